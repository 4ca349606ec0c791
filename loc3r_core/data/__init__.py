"""From scene folders to what the model trains on: clips, pose priors, per-patch targets."""
