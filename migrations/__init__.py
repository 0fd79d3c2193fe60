"""abvoc migrations."""
