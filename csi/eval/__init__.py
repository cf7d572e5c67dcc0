"""Evaluation: embeddings, distances, retrieval metrics."""
