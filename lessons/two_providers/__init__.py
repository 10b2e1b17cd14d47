"""Notebook 02: streaming from OpenAI and Anthropic through one relay, with async clients."""
