"""1-D bias study: convex-concave residual pairs on scalar data (claims 5, 6 and 9).

model.py: the pair network, its hand-written gradients, batched Nesterov training (with bias
searches and collapse detection) and exact Lipschitz constants; exact_search.py: the exact
minimiser of the loss over one bias and a round of exact kink search; reference.py: a
one-run-at-a-time reference and the candidate kink search, for tests and benches; plan.py:
the runs of a shard and their data; study.py: training a shard (run_shard); measure.py: what
is measured of the trained pairs; summary.py: the aggregate step; figures.py: figures from the
aggregated tables; claims.py: claims 5, 6 and 9.
"""
