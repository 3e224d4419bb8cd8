"""The retrain handler (handler.py)."""
