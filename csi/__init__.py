"""csi: cover song identification toolkit."""
