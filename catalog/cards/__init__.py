"""Everything written about a LoRA: lutnav's card file, ecosystem sidecars, README cards."""
