"""Formula extraction: worksheet pages cut into single formulas (dataset, candidates, tests)."""
