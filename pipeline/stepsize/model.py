"""State-dependent step sizes for gradient descent on deep linear networks: rules and engine.

docs/science.md section 6.1. `descend` runs `theta_{t+1} = theta_t - delta_t grad l(theta_t)`
for a batch of B runs as one tensor program, every run with its own rule, step state and
counters, on the shared linear-network engine (`pipeline.linear`: `Rhat = sum_c sign_c
W^c_L ... W^c_1`, the loss, its gradients, Hessian-vector products, Lanczos, the
run statuses). Rules
(`RULES`), for run b with initial / fixed step `delta0_b` and cap `cap_b`:

- `fixed`: `delta_t = delta0`;
- `curvature`: `delta_t = sigma * 2 / lambda_t`, `lambda_t` the top Ritz value of a few batched
  Lanczos steps on Hessian-vector products at `theta_t`, warm-started from the previous Ritz
  vector; recomputed every `refresh_b` iterations (per run: 1, the rule as stated, at every
  iterate; k > 1, a lagged variant that keeps the step for k iterations); no `delta0`;
- `polyak`: `delta_t = (l(theta_t) - l*) / ||grad l(theta_t)||^2` (Polyak's step);
- `adgd`: Malitsky and Mishchenko (2020): `delta_0 = delta0`, then
  `delta_t = min(sqrt(1 + q_{t-1}) delta_{t-1}, ||theta_t - theta_{t-1}|| / (2 ||g_t - g_{t-1}||))`,
  `q_t = delta_t / delta_{t-1}`, `q_0 = +inf`;
- `armijo`: backtracking from the trial `delta0`: multiply by `beta` until
  `l(theta - delta g) <= l(theta) - c delta ||g||^2` (at most `max_backtracks` times).

Every step is then capped at `cap_b` (+inf: no cap). Cost is counted per run: one gradient
evaluation per iteration (its forward pass gives the loss), one Hessian-vector product per
Lanczos step, one loss evaluation per Armijo trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline import tables
from pipeline.linear.lanczos import lanczos
from pipeline.linear.network import hessian_vector_product, loss, loss_and_gradients
from pipeline.linear.status import Monitoring, classify

RULES = ("fixed", "curvature", "polyak", "adgd", "armijo")


@dataclass(frozen=True)
class RuleSettings:
    """The settings of the rules (config `stepsize.curvature`, `.polyak`, `.armijo`)."""

    sigma: float = 0.5  # curvature: delta_t = sigma * 2 / lambda_t
    iters: int = 3  # curvature: Lanczos steps of a warm-started refresh
    first_iters: int = 10  # curvature: Lanczos steps of the first estimate (random start)
    warm_noise: float = 0.1  # curvature: weight of the run's random vector added to the warm start
    loss_star: float = 0.0  # polyak: l*
    beta: float = 0.5  # armijo: shrink factor
    c: float = 1e-4  # armijo: sufficient-decrease constant
    max_backtracks: int = 30  # armijo: trials beyond the first


@dataclass
class DescentResult:
    """Outcome of `descend` for B runs (arrays [B] unless stated)."""

    chains: list  # final weights, [[W_1..W_L] per chain], each [B, n, n]
    status: np.ndarray  # strings from STATUSES
    final_loss: np.ndarray  # loss where the run stopped (diverged: the loss that stopped it)
    peak_loss: np.ndarray  # the largest finite loss of the run (its start included)
    steps_to_tol: np.ndarray  # iterations (updates) until the loss stayed <= tol; NaN if never
    stopped_step: np.ndarray  # iteration at which the run stopped
    grads: np.ndarray  # gradient evaluations, to tolerance (converged) or until it stopped
    hvps: np.ndarray  # Hessian-vector products, counted the same way
    loss_evals: np.ndarray  # extra loss evaluations (Armijo trials), counted the same way
    last_step: np.ndarray  # step taken where the tol streak began (converged), else the last one
    max_step: np.ndarray  # the largest step size taken (converged: before the tol streak began)
    cap_hits: np.ndarray  # iterations at which the cap bound the step (counted like max_step)
    log_steps: np.ndarray  # [T] logged iterations (0, log-spaced, the last)
    log_loss: np.ndarray  # [T, B] loss at those iterations (NaN once stopped)
    log_step: np.ndarray  # [T, B] step size taken at those iterations (NaN once stopped)


# -------------------------------------------------------------------------- engine ----


def _layers(chains):
    return [w for ws in chains for w in ws]


def descend(
    R,
    chains,
    signs,
    rule,
    delta0,
    cap,
    iterations: int,
    monitoring: Monitoring,
    *,
    rules: RuleSettings,
    start=None,
    refresh=None,
    gen: torch.Generator | None = None,
    armijo_chunk: int = 16,
    compact_every: int = 10,
    log=None,
) -> DescentResult:
    """Gradient descent of B runs, each with its own step rule, as one tensor program.

    R: [B, n, n] targets; chains: list (one per chain) of L tensors [B, n, n] (copied); signs:
    +1/-1 per chain; rule: [B] names from RULES; delta0: [B] initial / fixed / trial steps (NaN
    for curvature); cap: [B] upper bounds on the step (inf: none); start: [B, D] random start
    vectors of the curvature rule's Lanczos (drawn from `gen` when None; only its runs' rows
    are used); refresh: [B] ints, how often a curvature run recomputes lambda_max (None: every
    iteration; ignored for the other rules). Data are whitened (`Sigma = I`).

    Statuses as in `pipeline.linear.status`: a run stops (and keeps its weights) when it
    diverges (a non-finite loss, or one above `monitoring.blowup`) or as soon as it has
    converged (`steps_to_tol` and the cost counters are taken where its final streak below tol
    began). The loop ends early once every run has stopped.
    `log(message)`, if given, is told the progress about ten times.

    Speed only (no effect on the results): stopped runs are masked (zero step) and, every
    `compact_every` iterations once they are a quarter of the batch, dropped from the working
    tensors (the runs keep their order, so each rule stays a contiguous slice);
    `armijo_chunk` backtracking trials are evaluated per batched loss.
    """
    rule = np.asarray(rule, dtype=object)
    unknown = set(rule) - set(RULES)
    if unknown:
        raise ValueError(f"unknown step rules {sorted(unknown)}")
    B, dtype, n = R.shape[0], R.dtype, R.shape[-1]
    refresh = np.ones(B, dtype=np.int64) if refresh is None else np.asarray(refresh, dtype=np.int64)
    if (refresh[rule == "curvature"] < 1).any():
        raise ValueError("refresh intervals of curvature runs must be at least 1")
    refresh = np.where(rule == "curvature", refresh, 1)
    # runs sorted by rule (and a curvature run's refresh interval), so that each rule's state is
    # a contiguous slice (views, no gathers)
    key = np.array([RULES.index(r) for r in rule]) * (int(refresh.max()) + 1) + np.where(
        rule == "curvature", refresh, 0
    )
    order = np.argsort(key, kind="stable")
    o = torch.as_tensor(order)
    ids = o.clone()  # original index of each working run
    names = rule[order]
    every = refresh[order]
    sizes = [len(ws) for ws in chains]
    layers = [w.detach()[o].clone() for ws in chains for w in ws]
    signs = [float(s) for s in signs]
    D = len(layers) * n * n
    f64 = lambda x: torch.as_tensor(np.asarray(x, dtype=float)[order], dtype=torch.float64)  # noqa: E731
    zeros = lambda: torch.zeros(B, dtype=torch.float64)  # noqa: E731
    nans = lambda: torch.full((B,), float("nan"), dtype=torch.float64)  # noqa: E731
    # the working state: every tensor has one row per working run
    w = dict(
        R=R[o].contiguous(),
        d0=f64(delta0),
        cap=f64(cap),
        alive=torch.ones(B, dtype=torch.bool),
        diverged=torch.zeros(B, dtype=torch.bool),
        converged=torch.zeros(B, dtype=torch.bool),
        final_loss=nans(),
        peak_loss=torch.full((B,), -math.inf, dtype=torch.float64),
        stopped=torch.full((B,), iterations, dtype=torch.int64),
        streak=torch.zeros(B, dtype=torch.int64),
        streak_from=torch.full((B,), -1, dtype=torch.int64),
        counters=torch.zeros(B, 5, dtype=torch.float64),  # grads, hvps, loss evals, max step, cap hits
        snap=torch.zeros(B, 5, dtype=torch.float64),  # the counters where the tol streak began
        last_step=nans(),
        tol_step=nans(),
        rises=torch.zeros(B, dtype=torch.int64),
        prev=nans(),
        cur=nans(),
    )
    if "adgd" in set(names):
        w.update(
            ad_step=w["d0"].clone(), ad_gnorm=zeros(), ad_q=torch.full((B,), math.inf, dtype=torch.float64)
        )
        w["ad_g"] = [torch.zeros_like(x) for x in layers]  # the previous gradient, per layer
    if "curvature" in set(names):
        if start is None:
            gen = gen if gen is not None else torch.Generator().manual_seed(0)
            w["cv_start"] = torch.randn(B, D, dtype=torch.float64, generator=gen)
        else:
            w["cv_start"] = torch.as_tensor(start, dtype=torch.float64)[o]
        w.update(cv_vec=torch.zeros(B, D, dtype=torch.float64), cv_step=zeros())
    out = {k: torch.empty((B, *v.shape[1:]), dtype=v.dtype) for k, v in w.items() if k in _OUTPUTS}
    final_layers = [torch.empty_like(x) for x in layers]

    def flush(rows):
        """Copy the results of the working rows `rows` to the outputs (original order)."""
        where = ids[rows]
        for k in out:
            out[k][where] = w[k][rows]
        for x, y in zip(final_layers, layers, strict=True):
            x[where] = y[rows]

    tol, blowup = monitoring.tol, monitoring.blowup
    log_steps = tables.log_steps(iterations, monitoring.log_points)
    log_at = {int(t): i for i, t in enumerate(log_steps)}
    log_loss = torch.full((len(log_steps), B), float("nan"), dtype=torch.float64)
    log_step = torch.full((len(log_steps), B), float("nan"), dtype=torch.float64)
    window = monitoring.window(iterations)
    tol_window = max(1, int(monitoring.tol_window))
    report_every = max(1, iterations // 10)
    cv_started: set[int] = set()  # refresh intervals whose first estimate is done

    with torch.no_grad():
        for t in range(iterations + 1):
            alive = w["alive"]
            if t % compact_every == 0 and 4 * int((~alive).sum()) >= len(alive) > 0 and bool(alive.any()):
                flush(~alive)
                keep = torch.nonzero(alive).flatten()
                w = {k: [x[keep] for x in v] if isinstance(v, list) else v[keep] for k, v in w.items()}
                layers = [x[keep] for x in layers]
                ids, names, every = ids[keep], names[keep.numpy()], every[keep.numpy()]
                alive = w["alive"]
            span = _spans(names)
            Wn = len(ids)
            nested, k = [], 0
            for size in sizes:
                nested.append(layers[k : k + size])
                k += size
            cur, grads = loss_and_gradients(w["R"], nested, signs)
            cur = cur.double()
            glayers = _layers(grads)
            # ---- bookkeeping on [W] vectors: divergence, the tolerance streak, logs
            finite = torch.isfinite(cur)
            bad = alive & ~(finite & (cur <= blowup))
            w["peak_loss"] = torch.where(alive & finite, torch.maximum(w["peak_loss"], cur), w["peak_loss"])
            below = alive & (cur <= tol)
            w["streak"] = torch.where(below, w["streak"] + 1, 0)
            began = below & (w["streak"] == 1)
            w["streak_from"] = torch.where(began, t, w["streak_from"])
            w["snap"] = torch.where(began[:, None], w["counters"], w["snap"])
            done = below & (w["streak"] >= tol_window)
            stop = bad | done
            if bool(stop.any()):
                w["final_loss"] = torch.where(stop, cur, w["final_loss"])
                w["stopped"] = torch.where(stop, t, w["stopped"])
                w["diverged"] |= bad
                w["converged"] |= done
                alive = w["alive"] = alive & ~stop
            if t > iterations - window:
                w["rises"] += (cur > w["prev"] * (1 + monitoring.osc_rise)) & alive
            w["prev"], w["cur"] = cur, cur
            if t in log_at:
                log_loss[log_at[t], ids] = torch.where(alive | stop, cur, float("nan"))
            if log is not None and t % report_every == 0:
                log(f"iteration {t} of {iterations}: {int(alive.sum())} of {B} runs still going")
            if t == iterations or not bool(alive.any()):
                break
            # ---- the step of every run
            gsq = sum(torch.linalg.vector_norm(g, dim=(1, 2)).double() ** 2 for g in glayers)
            step = torch.zeros(Wn, dtype=torch.float64)
            if "fixed" in span:
                s = span["fixed"]
                step[s] = w["d0"][s]
            if "polyak" in span:
                s = span["polyak"]
                gap = (cur[s] - rules.loss_star).clamp_min(0.0)
                step[s] = torch.where(gsq[s] > 0, gap / gsq[s], math.inf)
            if "adgd" in span:
                s = span["adgd"]
                prev_step = w["ad_step"][s]
                if t == 0:  # the initial step
                    new = w["d0"][s]
                else:
                    diff = sum(
                        torch.linalg.vector_norm(g[s] - h[s], dim=(1, 2)).double() ** 2
                        for g, h in zip(glayers, w["ad_g"], strict=True)
                    ).sqrt()
                    moved = prev_step * w["ad_gnorm"][s]  # ||theta_t - theta_{t-1}||
                    ratio = torch.where(diff > 0, moved / (2 * diff), math.inf)
                    new = torch.minimum(torch.sqrt(1 + w["ad_q"][s]) * prev_step, ratio)
                    new = torch.where(torch.isfinite(new), new, prev_step)  # no information
                    w["ad_q"][s] = new / prev_step
                for g, h in zip(glayers, w["ad_g"], strict=True):
                    h[s] = g[s]
                w["ad_gnorm"][s] = gsq[s].sqrt()
                w["ad_step"][s] = new
                step[s] = new
            if "curvature" in span:
                for k_every, s in _refresh_spans(every, span["curvature"]).items():
                    if t % k_every == 0:
                        _curvature(w, s, nested, signs, rules, D, k_every not in cv_started, alive)
                        cv_started.add(k_every)
                    step[s] = w["cv_step"][s]
            if "armijo" in span:
                s = span["armijo"]
                step[s], n_trials = _armijo(
                    w["R"], nested, grads, signs, s, cur[s], gsq[s], w["d0"][s], alive[s], rules, armijo_chunk
                )
                w["counters"][s, 2] += n_trials
            capped = step > w["cap"]
            step = torch.where(capped, w["cap"], step)
            step = torch.where(alive, step, 0.0)
            c = w["counters"]
            c[:, 0] += alive
            c[:, 3] = torch.maximum(c[:, 3], step)
            c[:, 4] += capped & alive
            w["last_step"] = torch.where(alive, step, w["last_step"])
            w["tol_step"] = torch.where(began, step, w["tol_step"])
            if t in log_at:
                log_step[log_at[t], ids] = torch.where(alive, step, float("nan"))
            # ---- the update, layer by layer (stopped runs take a zero step)
            step3 = step.to(dtype).reshape(Wn, 1, 1)
            for x, g in zip(layers, glayers, strict=True):
                x.addcmul_(step3, g, value=-1.0)

    w["final_loss"] = torch.where(w["alive"], w["cur"], w["final_loss"])
    w["stopped"] = torch.where(w["alive"], t, w["stopped"])
    flush(torch.ones(len(ids), dtype=torch.bool))
    conv, div = out["converged"], out["diverged"]
    counters = torch.where(conv[:, None], out["snap"], out["counters"])
    status = classify(div.numpy(), conv.numpy(), out["rises"].numpy(), window, monitoring.osc_fraction)
    chains_out, k = [], 0
    for size in sizes:  # the outputs are in the original order already (written at ids)
        chains_out.append(final_layers[k : k + size])
        k += size
    return DescentResult(
        chains=chains_out,
        status=status,
        final_loss=out["final_loss"].numpy(),
        peak_loss=out["peak_loss"].numpy(),
        steps_to_tol=np.where(conv.numpy(), out["streak_from"].numpy().astype(float), np.nan),
        stopped_step=out["stopped"].numpy().astype(float),
        grads=counters[:, 0].numpy(),
        hvps=counters[:, 1].numpy(),
        loss_evals=counters[:, 2].numpy(),
        last_step=torch.where(conv, out["tol_step"], out["last_step"]).numpy(),
        max_step=counters[:, 3].numpy(),
        cap_hits=counters[:, 4].numpy(),
        log_steps=log_steps,
        log_loss=log_loss.numpy(),
        log_step=log_step.numpy(),
    )


_OUTPUTS = (
    "final_loss",
    "peak_loss",
    "stopped",
    "converged",
    "diverged",
    "streak_from",
    "counters",
    "snap",
    "last_step",
    "tol_step",
    "rises",
)


def _spans(names: np.ndarray) -> dict[str, slice]:
    """{rule: slice of its (contiguous) working runs}."""
    span = {}
    for name in RULES:
        hit = np.nonzero(names == name)[0]
        if len(hit):
            span[name] = slice(int(hit[0]), int(hit[-1]) + 1)
    return span


def _refresh_spans(every: np.ndarray, s: slice) -> dict[int, slice]:
    """{refresh interval: slice} of the curvature runs in `s` (sorted by interval)."""
    out, vals = {}, every[s]
    for k in np.unique(vals):
        hit = np.nonzero(vals == k)[0]
        out[int(k)] = slice(s.start + int(hit[0]), s.start + int(hit[-1]) + 1)
    return out


def _curvature(w, s, nested, signs, rules: RuleSettings, D: int, first: bool, alive) -> None:
    """lambda_max at the current iterate of the curvature runs in slice `s` (batched Lanczos,
    warm-started from each run's previous Ritz vector) and their step `sigma 2 / lambda`."""
    sub = [[x[s] for x in ws] for ws in nested]
    hvp, _ = hessian_vector_product(w["R"][s], sub, signs)
    start_s, vec = w["cv_start"][s], w["cv_vec"][s]
    if first:
        q, iters = start_s, rules.first_iters
    else:
        ok = torch.isfinite(vec).all(1) & (vec.norm(dim=1) > 0)
        warm = vec + rules.warm_noise * start_s / math.sqrt(D)
        q, iters = torch.where(ok[:, None], warm, start_s), rules.iters
    lam, w["cv_vec"][s], _, k = lanczos(hvp, q, iters)
    w["counters"][s, 1] += k * alive[s]
    good = torch.isfinite(lam) & (lam > 0)
    w["cv_step"][s] = torch.where(good, 2 * rules.sigma / lam.clamp_min(1e-300), math.inf)


def _rows(x, idx):
    return x if idx is None else x[idx]


def _armijo(R, chains, grads, signs, s, loss0, gsq, trial0, alive, rules: RuleSettings, chunk: int):
    """(steps, loss evaluations) [b] of the backtracking runs in slice `s`: the first of the
    trials trial0 * beta^j, j = 0, 1, ..., max_backtracks, with l(theta - delta g) <= l(theta)
    - c delta ||g||^2 (none: trial0 * beta^(max_backtracks + 1)). The first trial is evaluated
    alone, then the trials of the still pending runs `chunk` at a time in one batched loss:
    the same steps as one trial at a time, and each run is charged the loss evaluations that
    sequential backtracking makes (up to its accepted trial)."""
    total = rules.max_backtracks + 1
    step = trial0 * rules.beta**total
    pending = alive.clone()
    w_s = [[x[s] for x in ws] for ws in chains]
    g_s = [[g[s] for g in gs] for gs in grads]
    R_s, counts = R[s], torch.zeros_like(trial0)
    j0 = 0
    while j0 < total and bool(pending.any()):
        K = min(1 if j0 == 0 else chunk, total - j0)
        idx = torch.nonzero(pending).flatten()
        m = len(idx)
        sel = None if m == len(pending) else idx  # every run pending: views, no gathers
        trials = trial0[idx][None, :] * rules.beta ** torch.arange(j0, j0 + K, dtype=torch.float64)[:, None]
        t4 = trials.to(R.dtype).reshape(K, m, 1, 1)
        moved = [  # [K m, n, n] per layer, trial-major
            [
                torch.addcmul(_rows(x, sel), t4, _rows(g, sel), value=-1.0).flatten(0, 1)
                for x, g in zip(ws, gs, strict=True)
            ]
            for ws, gs in zip(w_s, g_s, strict=True)
        ]
        R_k = _rows(R_s, sel) if K == 1 else _rows(R_s, sel).repeat(K, 1, 1)
        lt = loss(R_k, moved, signs).double().reshape(K, m)
        ok = lt <= loss0[idx][None, :] - rules.c * trials * gsq[idx][None, :]
        has = ok.any(0)
        first = ok.to(torch.int8).argmax(0)
        counts[idx] += torch.where(has, first + 1, K).double()
        step[idx[has]] = trials[first[has], torch.nonzero(has).flatten()]
        pending[idx[has]] = False
        j0 += K
    return step, counts
