"""Training the Loc3R model: config, batching, the loop and its checkpoints."""
