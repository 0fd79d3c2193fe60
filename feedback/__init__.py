"""abvoc feedback."""
