"""Stability study: gradient descent on deep linear (residual) networks (claims 1-4).

model.py: one batch of fixed-step gradient descent on the shared engine (pipeline.linear) and
the sharpness at its end; study.py: config slice -> tables (run_shard); summary.py: the
aggregate step; figures.py: figures from the aggregated tables; claims.py: claims 1-4.
"""
