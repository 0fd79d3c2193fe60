"""`python -m app` runs the abvoc command line."""

from app.cli import main

if __name__ == "__main__":  # not when a spawned child process imports this module again
    main()
