"""Support code for notebooks and tests: background servers, provider switch, SSE parsing, plots,
exercise checks and the streaming test kit. Lesson apps never import it."""
