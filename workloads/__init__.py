"""The reference workloads: users of abvoc's public path that build ordinary bundles."""
