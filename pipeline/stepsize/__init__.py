"""State-dependent step sizes for gradient descent on deep linear networks (claim 8, ours).

The paper's future work (docs/science.md section 6.1): fixed, curvature-controlled, Polyak,
AdGD and Armijo steps on the scalar and matrix networks of the shared engine
(pipeline.linear), with the cost of each counted in gradient, Hessian-vector and loss
evaluations, and the regions of attraction of the scalar network at L = 2 and 3. model.py: the
step rules and the batched engine; study.py: config slice -> tables (run_shard); summary.py:
the aggregate step; figures.py: figures from the aggregated tables; claims.py: claim 8.
"""
