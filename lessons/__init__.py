"""Lesson apps of the Streaming LLM Responses workbook, plus its support packages."""
