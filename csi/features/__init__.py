"""Feature extraction: CQT front ends, signal augmentation, feature store."""
