"""Training: config, distributed setup, checkpoints, the trainer."""
