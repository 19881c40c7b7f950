"""Stability study: gradient descent on deep linear (residual) networks (claims 1-4).

model.py: theory (critical step sizes, sharpness at minima) and the batched GD engine;
study.py: config slice -> tables; figures.py: figures from the aggregated tables.
"""
