"""Notebook 09's lesson app: the fast path, a relay that reads the provider's stream itself."""
