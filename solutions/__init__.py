"""Exercise solutions: each written once; the learner's stub in the notebook is generated from it."""
