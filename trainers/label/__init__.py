"""Captioning training images (``lutnav label``): a local captioner or WD14 tagger, a trigger word, files out."""
