"""Input/output: JSONL manifests and audio decoding."""
