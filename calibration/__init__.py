"""Scoring calibration: import a CRM export, refit lead-scoring weights on outcomes,
turn them into a points table with capacity-aware thresholds, and compare with the
previous quarter's model. One-line entry point for notebooks:
``calibration.refit.run_refit(export, mapping, previous=None, outcome="success", seed=0)``.
"""
