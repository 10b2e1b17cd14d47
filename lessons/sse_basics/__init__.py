"""Notebook 01's lesson apps: SSE streaming from FastAPI on the core's EventStream, and two
first versions to measure it against (a hand-made StreamingResponse, FastAPI's native SSE)."""
