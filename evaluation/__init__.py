"""abvoc evaluation."""
