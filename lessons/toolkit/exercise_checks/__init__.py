"""Checkers for the notebooks' exercises, one module per notebook; each raises NotYet."""
