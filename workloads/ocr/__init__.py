"""The math-formula OCR reference workload: formula image in, LaTeX out, in four stages."""
