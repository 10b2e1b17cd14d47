"""Notebook 05: a relay hardened against stream errors, stalls, disconnects, shutdown and abuse."""
