"""Audio fingerprinting: which recording, and where, a snippet comes from."""
