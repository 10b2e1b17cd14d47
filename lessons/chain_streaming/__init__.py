"""Notebook 03: streaming LangChain models and chains to clients over Server-Sent Events."""
