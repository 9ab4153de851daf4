"""What a LoRA is, from its header alone: base-model family, key layout, alpha, client rules."""
