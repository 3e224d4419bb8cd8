"""The scheduled model-quality check (handler.py)."""
