"""MNIST study: the 20-network convex-concave classifier and its baselines (claim 7).

model.py: the batched model, loss, evaluation, drift and Lipschitz measurements; train.py:
the resumable training loop; study.py: one trained run -> tables (run_shard); summary.py: the
aggregate step; figures.py: figures from the aggregated tables; claims.py: claim 7.
"""
