"""Training: losses (each returns the loss and its gradient), optimizers and the training loop."""
