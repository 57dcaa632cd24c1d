"""Ready models, one per topology: input layer -> recurrent stack -> head."""
