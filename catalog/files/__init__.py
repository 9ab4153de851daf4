"""Bytes on disk: the safetensors header reader and writer, hashes, crash-safe writes, text decoding."""
