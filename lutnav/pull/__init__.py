"""Getting LoRAs into the library: from the Hugging Face Hub, a folder or a zip; and updating them."""
