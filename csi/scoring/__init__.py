"""Scoring recordings against each other: how recordings are compared (``matching``), chunk
and track distances (``distance``, ``best_pairs``), retrieval metrics (``metrics``) and
distance-to-probability calibration (``calibration``). Used by evaluation, the index and
identification alike; it knows nothing of models or embedding."""
