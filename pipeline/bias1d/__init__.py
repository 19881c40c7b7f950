"""1-D bias study: convex-concave residual pairs on scalar data (claims 5-6).

model.py: the pair network, its hand-written gradients, batched Nesterov training and exact
Lipschitz constants; reference.py: a one-run-at-a-time reference for tests and benches;
study.py: config slice -> tables; figures.py: figures from the aggregated tables.
"""
