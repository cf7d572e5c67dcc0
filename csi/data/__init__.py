"""Training data: chunk datasets, samplers and feature-domain augmentation."""
