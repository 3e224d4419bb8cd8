"""The model-quality check: captured predictions joined with ground-truth labels by inference id.

labels.py reads SageMaker Model Monitor's ground-truth files, metrics.py computes the window's
metrics (pure Python: the check's Lambda loads no numpy), job.py runs one check: read, join,
compare with the served package's evaluation, report, publish `MLOps/ModelQuality`.
"""
