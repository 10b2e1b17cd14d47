"""Notebook 06's lesson apps: streaming through a reverse proxy and into a browser page."""
