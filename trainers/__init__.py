"""Training image and text LoRAs; results are filed into the catalog."""
