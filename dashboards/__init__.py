"""abvoc dashboards."""
