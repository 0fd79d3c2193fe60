"""abvoc serving."""
