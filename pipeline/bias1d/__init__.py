"""1-D bias study: convex-concave residual pairs on scalar data (claims 5, 6 and 9).

model.py: the pair network, its hand-written gradients, batched Nesterov training, the kink
search and exact Lipschitz constants; reference.py: a one-run-at-a-time reference for tests
and benches; plan.py: the runs of a shard and their data; study.py: training a shard
(run_shard); measure.py: what is measured of the trained pairs; summary.py: the aggregate
step; figures.py: figures from the aggregated tables; claims.py: claims 5, 6 and 9.
"""
