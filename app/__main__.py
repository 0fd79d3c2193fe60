"""`python -m app` runs the abvoc command line."""

from app.cli import main

main()
