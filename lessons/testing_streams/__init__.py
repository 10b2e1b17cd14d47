"""Notebook 04's lesson code: an app under test, a client that fails loudly, and broken apps."""
