"""One module per CLI command; each holds its core function, and cli.py registers the click commands."""
