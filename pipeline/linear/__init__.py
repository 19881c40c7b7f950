"""The deep linear network engine shared by the studies that train linear networks.

`Rhat = sum_c sign_c W^c_L ... W^c_1` for a batch of runs (one chain: the single network; two
chains with signs +1, -1: the double network; n = 1: the scalar network). Modules:
`theory` (closed-form step bounds and sharpness, numpy only), `network` (chain products, the
loss, its gradients and Hessian-vector products by autograd), `lanczos` (batched Lanczos and
the sharpness lambda_max), `descent` (fixed-step gradient descent of a whole batch, with
hand-written gradients), `status` (the run statuses and how they are decided), `starts`
(initial weights, targets, data).
"""
