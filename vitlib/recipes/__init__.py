"""Training recipes for the course checkpoints: each trains a model the way its chapter does and saves it
(chapters 03-06)."""
