"""Shadow tests: the comparison of a shadow variant with production over a window (report.py)."""
