"""Applications: a model, its data and its training task, ready for the command line."""
