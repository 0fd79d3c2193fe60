"""abvoc core."""
