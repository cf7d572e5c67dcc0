"""Command-line entry points: python3 -m tools.<name>."""
