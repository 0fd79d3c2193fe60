"""abvoc app."""
