"""JSON Schema files for abvoc events, one per event type and version."""
