"""Notebook 01's lesson apps: SSE streaming from FastAPI, by hand and with FastAPI's native SSE."""
