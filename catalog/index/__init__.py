"""The library and its SQLite index: walking the tree, scanning, querying, browsing."""
