"""Edge of stability on the scalar deep linear network (pipeline.edge): flow solutions, GD, fractals."""

import math

import mpmath
import numpy as np
import pytest
import torch

from pipeline.edge import fractal as fr
from pipeline.edge import model as em

# Small batched products run fastest on one thread.
pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def t(x):
    return torch.as_tensor(x, dtype=F64)


def mixed_starts(gen, n, L, r):
    """`[n, L]` weights with |w_i| in [0.4, 1.6], random signs, and sign(P) = sign(r) (r: [n])."""
    w = torch.empty(n, L, dtype=F64).uniform_(0.4, 1.6, generator=gen)
    w = w * torch.where(torch.rand(n, L, generator=gen, dtype=F64) < 0.5, -1.0, 1.0)
    w[:, 0] = w[:, 0] * torch.sign(w.prod(dim=1)) * torch.sign(r)
    return w


def reference_offset(w, r):
    """The offset by 300 bisections in 60-digit arithmetic: `(c, [w_i^2 + c])`."""
    with mpmath.workdps(60):
        a = [mpmath.mpf(float(x)) ** 2 for x in w]
        r2 = mpmath.mpf(float(r)) ** 2

        def f(c):
            return mpmath.fsum(mpmath.log(x + c) for x in a) - mpmath.log(r2)

        lo, hi = -min(a), max(a) + r2
        for _ in range(300):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if f(mid) > 0 else (mid, hi)
        c = (lo + hi) / 2
        return c, [x + c for x in a]


# ------------------------------------------------------------------ flow solution ----


def test_delta_star_is_two_over_the_balanced_sharpness():
    for L, r, s in [(1, 2.0, 0.3), (3, -0.5, 1.0), (16, 2.0, 0.3)]:
        w = torch.full((1, L), abs(r) ** (1 / L), dtype=F64)
        w[0, 0] *= math.copysign(1.0, r)
        balanced = s * L * abs(r) ** (2 * (L - 1) / L)
        assert em.delta_star(L, r, s) == pytest.approx(2 / balanced, rel=1e-15)
        assert em.phi(w, r, s).item() == pytest.approx(balanced, rel=1e-13)
    assert np.allclose(em.delta_star(np.array([1, 2]), 1.0, 1.0), [2.0, 1.0])


def test_offset_at_depth_one_is_exact():
    w = t([[0.3], [-2.5], [1e-3], [7.0]])
    r = t([2.0, -0.5, 0.5, 3.0])
    c = em.gfs_offset(w, r)
    assert torch.equal(c, r * r - w[:, 0] ** 2)
    assert torch.equal(em.gfs(w, r)[:, 0], r)
    assert torch.equal(em.phi(w, r, t([1.0, 0.3, 1.0, 2.0])), t([1.0, 0.3, 1.0, 2.0]))


@pytest.mark.parametrize(
    "w, r",
    [
        ([1e-3, 30.0], 1.0),
        ([1e-3, 30.0, -1.0], -1.0),
        ([1e-3] * 8 + [30.0] * 8, 1.0),
        ([30.0] * 16, 0.5),
        ([-1e-3] * 16, 2.0),
        ([1e-3, 1e-3 * (1 + 1e-9), 30.0], 1.0),
        ([1e-3, 30.0], 1e-3),
        ([1e-6, -1e-6, 1e-6, 1e6, 1e6, -1e6], 7.0),
        ([0.3, 3.0, 1.0], 1.0),
    ],
)
def test_offset_reaches_float64_accuracy(w, r):
    c, q, stalls = em._gfs_squares(t([w]), r)
    assert not stalls.any()
    c_ref, q_ref = reference_offset(w, r)
    scale = max(abs(c_ref), min(q_ref))  # the offset is only determined to eps * min(w_i^2 + c)
    assert float(abs(mpmath.mpf(c.item()) - c_ref) / scale) < 1e-13
    for got, ref in zip(q[0].tolist(), q_ref, strict=True):
        assert float(abs(mpmath.mpf(got) - ref) / ref) < 1e-13


def test_gfs_keeps_signs_and_differences_and_fits_the_target():
    gen = torch.Generator().manual_seed(3)
    r = t([0.5, -0.5, 2.0, -2.0] * 25)
    w = mixed_starts(gen, 100, 5, r)
    v = em.gfs(w, r)
    assert torch.equal(torch.sign(v), torch.sign(w))
    assert torch.allclose(v.prod(dim=1), r, rtol=1e-13, atol=0)
    c = em.gfs_offset(w, r)
    assert torch.allclose(v * v - w * w, c[:, None].expand(-1, 5), rtol=1e-12, atol=1e-13)
    # at a minimum the Hessian is s g g^T, so the exact sharpness there is phi
    s = t([1.0, 0.3] * 50)
    assert torch.allclose(em.sharpness(v, r, s), em.phi(w, r, s), rtol=1e-12, atol=0)
    # AM-GM: the balanced minimum is the flattest, so 2 / phi <= delta*
    assert (2 / em.phi(w, r, s).numpy() <= em.delta_star(5, r.numpy(), s.numpy()) * (1 + 1e-14)).all()


def test_stalls_only_at_a_tie_for_the_smallest_weight():
    # sign(P) != sign(r) or P == 0 with a tie for the smallest |w_i|: the tied weights reach 0
    # together, at a saddle. Otherwise the unique smallest weight crosses 0 and the flow goes on.
    stalls = [([1.0, 1.0], -1.0), ([-1.0, 1.0, 2.0], 1.0), ([0.0, 0.0, 3.0], 1.0), ([1.0, 1.0, 1.0], -2.0)]
    crosses = [([1.0, -2.0], 1.0), ([0.0, 3.0], -1.0), ([-0.5, 2.0, 1.0], 1.0), ([-0.7], 2.0)]
    for (ws, r), stalled in [(case, True) for case in stalls] + [(case, False) for case in crosses]:
        w = t([ws])
        p = em.phi(w, r, 1.0)
        assert torch.isnan(p).item() == stalled, ws
        assert torch.isnan(em.gfs_offset(w, r)).item() == stalled, ws
        assert torch.isnan(em.gfs(w, r)).all().item() == stalled, ws
        assert em.regime(p, 0.01, 10.0)[0] == ("stalls" if stalled else "flow")
    # the crossing weight takes the sign of r prod_{j != i} w_j (also from exactly 0)
    v = em.gfs(t([[1.0, -2.0], [0.0, 3.0]]), t([1.0, -1.0]))
    assert torch.equal(torch.sign(v), t([[-1.0, -1.0], [-1.0, 1.0]]))
    assert torch.allclose(v.prod(dim=1), t([1.0, -1.0]), rtol=1e-14, atol=0)
    assert em.gfs(t([[-0.7]]), 2.0).item() == 2.0
    # a tie is harmless when sign(P) = sign(r): the flow never reaches 0
    assert torch.isfinite(em.phi(t([[1.0, 1.0, 1.0], [-1.0, -1.0, 2.0]]), 1.0)).all()
    # the flow itself stops at the saddle of a tie and goes through 0 otherwise
    w = t([[1.0, 1.0, 1.5], [0.5, 1.1, 1.5], [0.0, 2.0, 3.0]])
    ref = em.flow_reference(w, -1.0, 1.0, horizon=50.0)
    assert ref.loss[0] > 0.4 and (ref.loss[1:] < 1e-26).all()
    assert np.allclose(ref.sharpness[1:], em.phi(w[1:], -1.0).numpy(), rtol=1e-6, atol=0)
    assert np.allclose(ref.w[1:], em.gfs(w[1:], -1.0).numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("L", [1, 2, 3, 4, 8, 16])
def test_phi_matches_the_integrated_flow(L):
    gen = torch.Generator().manual_seed(10 + L)
    cases = [(r, s) for r in (0.5, -0.5, 2.0, -2.0) for s in (1.0, 0.3)]
    per = 3
    r = t([r for r, _ in cases for _ in range(per)])
    s = t([s for _, s in cases for _ in range(per)])
    w = mixed_starts(gen, len(r), L, r)
    ref = em.flow_reference(w, r, s)
    assert (ref.loss < 1e-26).all()
    assert np.allclose(ref.sharpness, em.phi(w, r, s).numpy(), rtol=1e-6, atol=0)
    assert np.allclose(ref.w, em.gfs(w, r).numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_phi_matches_the_flow_through_zero(L):
    # sign(P) != sign(r) with a clearly smallest weight: the flow carries it through 0. (Deep
    # networks pass close to the origin on the way, where the flow crawls, so L stays small.)
    gen = torch.Generator().manual_seed(20 + L)
    r = t([0.5, -0.5, 2.0, -2.0] * 4)
    s = t([1.0, 0.3] * 8)
    w = mixed_starts(gen, len(r), L, r)
    w[:, 0] = -0.2 * torch.sign(w[:, 0])
    if L > 1:
        w[:, 1:] = torch.sign(w[:, 1:]) * (0.6 + w[:, 1:].abs())
    ref = em.flow_reference(w, r, s)
    assert (ref.loss < 1e-26).all()
    assert np.allclose(ref.sharpness, em.phi(w, r, s).numpy(), rtol=1e-6, atol=0)
    v = em.gfs(w, r).numpy()
    assert np.allclose(ref.w, v, rtol=1e-6, atol=0)
    assert (np.sign(v[:, 0]) == -np.sign(w[:, 0].numpy())).all()


# ------------------------------------------------------------------- derivatives ----


def test_gradient_and_hessian_match_autograd():
    gen = torch.Generator().manual_seed(4)
    for L in (1, 2, 3, 5):
        w = torch.randn(4, L, dtype=F64, generator=gen)
        w[0, 0] = 0.0  # a zero weight: the products must not divide
        r, s = t([0.5, -2.0, 1.0, 3.0]), t([1.0, 0.3, 2.0, 1.0])
        H, g = em.hessian(w, r, s), em.gradient(w, r, s)
        for b in range(4):

            def loss(x, sb=s[b], rb=r[b]):
                return 0.5 * sb * (x.prod() - rb) ** 2

            ref = torch.autograd.functional.hessian(loss, w[b])
            assert torch.allclose(H[b], ref, rtol=1e-13, atol=1e-14)
            assert torch.allclose(
                g[b], torch.autograd.functional.jacobian(loss, w[b]), rtol=1e-13, atol=1e-14
            )
            top = torch.linalg.eigvalsh(ref)[-1]
            assert em.sharpness(w[b : b + 1], r[b], s[b]).item() == pytest.approx(
                top.item(), rel=1e-12, abs=1e-14
            )
    assert torch.isnan(em.sharpness(t([[math.inf, 1.0], [1.0, 2.0]]), 1.0)).tolist() == [True, False]


# ----------------------------------------------------------------------- regimes ----


@pytest.mark.parametrize("L", [2, 3, 8])
def test_identity_start_has_no_edge_band(L):
    s, r = 0.3, 2.0
    p0 = em.phi(torch.ones(1, L, dtype=F64), r, s).item()
    assert p0 == pytest.approx(s * L * abs(r) ** (2 * (L - 1) / L), rel=1e-13)
    ds = float(em.delta_star(L, r, s))
    assert 2 / p0 == pytest.approx(ds, rel=1e-13)
    deltas = np.array([0.5, 1 - 1e-9, 1.0, 1.5]) * ds
    assert list(em.regime(p0, deltas, ds)) == ["flow", "flow", "unstable", "unstable"]


def test_unbalanced_start_has_all_three_regimes():
    w0 = t([[0.3, 3.0, 1.0]])
    p0 = em.phi(w0, 1.0, 1.0).item()
    ds = float(em.delta_star(3, 1.0, 1.0))
    assert 2 / p0 < 0.5 * ds
    deltas = np.array([0.5 * 2 / p0, 2 / p0, 1.1 * 2 / p0, 0.5 * (2 / p0 + ds), ds, 1.1 * ds])
    got = em.regime(torch.tensor(p0), deltas, ds)
    assert list(got) == ["flow", "edge", "edge", "edge", "unstable", "unstable"]
    # GD: the flow step ends at the GFS's sharpness (nearly), the edge step below 2 / delta
    tr = em.gd_trace(w0.expand(2, 3), 1.0, 1.0, t(deltas[[0, 2]]), 400, [0, 400])
    assert list(tr.status) == ["converged", "converged"]
    assert tr.final_sharpness[0] == pytest.approx(p0, rel=5e-3)
    assert tr.final_sharpness[1] < 2 / deltas[2] < p0


# -------------------------------------------------------------- gradient descent ----


def test_batched_gd_trace_equals_one_run_at_a_time():
    gen = torch.Generator().manual_seed(5)
    # six hand-picked runs, then 26 random ones so that the batch takes the vectorised kernels
    r = torch.cat([t([1.0, -2.0, 0.5, 1.0, 1.0, -1.0]), t([1.0, -2.0] * 13)])
    s = torch.cat([t([1.0, 0.3, 1.0, 1.0, 2.0, 1.0]), t([1.0, 0.3] * 13)])
    w0 = mixed_starts(gen, 32, 4, r)
    w0[5] = t([1.0, 1.0, 1.0, 1.0])  # stalls: sign(P) != sign(r)
    phi0 = em.phi(w0, r, s)
    ds = t(em.delta_star(4, r.numpy(), s.numpy()))
    deltas = torch.cat(
        [
            0.5 * 2 / phi0[:2],  # flow
            0.5 * (2 / phi0[2:4] + ds[2:4]),  # edge
            3 * ds[4:5],  # unstable: diverges
            t([0.1]),
            (2 / phi0[6:]) * torch.empty(26, dtype=F64).uniform_(0.3, 1.5, generator=gen),
        ]
    )
    kw = {"iterations": 150, "log_steps": [0, 1, 7, 50, 150], "tol_window": 5}
    batched = em.gd_trace(w0, r, s, deltas, **kw)
    assert "diverged" in batched.status and "converged" in batched.status
    for b in [0, 1, 2, 3, 4, 5, 13, 31]:
        one = em.gd_trace(w0[b : b + 1], r[b], s[b], deltas[b : b + 1], **kw)
        for name in ("loss", "phi", "sharpness"):
            assert np.array_equal(getattr(batched, name)[:, b], getattr(one, name)[:, 0], equal_nan=True), (
                name
            )
        for name in ("phi_increases", "status", "stopped_step"):
            assert getattr(batched, name)[b] == getattr(one, name)[0], name
        for name in ("phi0", "final_loss", "final_phi"):
            assert np.array_equal(getattr(batched, name)[b], getattr(one, name)[0], equal_nan=True), name
        assert np.array_equal(batched.final_w[b], one.final_w[0], equal_nan=True)
        assert np.array_equal(batched.final_sharpness[b], one.final_sharpness[0], equal_nan=True)


def test_gd_trace_statuses_logs_and_stops():
    w0 = t([[1.5, 0.5, 1.0]] * 3)
    p0 = em.phi(w0[:1], 1.0, 1.0).item()
    deltas = t([1 / p0, 1e-4, 5.0])
    tr = em.gd_trace(w0, 1.0, 1.0, deltas, 60, [0, 2, 60], tol=1e-20, tol_window=10)
    assert list(tr.status) == ["converged", "not_converged", "diverged"]
    assert np.array_equal(tr.phi0, np.full(3, p0))
    d = tr.stopped_step[2]
    assert 0 < d < 60 and list(tr.stopped_step[:2]) == [60, 60]
    assert not np.isfinite(tr.final_loss[2]) or tr.final_loss[2] > 1e12
    assert np.isnan(tr.loss[2, 2]) and np.isnan(tr.final_sharpness[2]) and np.isnan(tr.final_phi[2])
    assert tr.loss[0].tolist() == [0.5 * 0.25**2] * 3
    # a tiny step follows the flow: phi barely moves and never rises
    assert tr.final_phi[1] == pytest.approx(p0, rel=1e-6)
    assert tr.phi_increases[1] == 0
    with pytest.raises(ValueError):
        em.gd_trace(w0, 1.0, 1.0, deltas, 10, [11])


# ----------------------------------------------------------------------- fractal ----


def koch_snowflake(level):
    """Vertices `[3 4^level, 2]` of the Koch snowflake on the unit triangle (counter-clockwise)."""
    p = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    c, s = math.cos(-math.pi / 3), math.sin(-math.pi / 3)
    rot = np.array([[c, -s], [s, c]])
    for _ in range(level):
        d = (np.roll(p, -1, axis=0) - p) / 3
        p = np.stack([p, p + d, p + d + d @ rot.T, p + 2 * d], axis=1).reshape(-1, 2)
    return p


def polygon_mask(poly, n):
    """Even-odd fill `[n, n]` of a closed polygon given in cell units (cell centres at `+0.5`)."""
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    j0 = np.clip(np.ceil(np.minimum(y0, y1) - 0.5).astype(np.int64), 0, n)
    j1 = np.clip(np.ceil(np.maximum(y0, y1) - 0.5).astype(np.int64), 0, n)
    cnt = j1 - j0  # rows whose centre the edge crosses (half-open: each vertex counted once)
    e = np.repeat(np.arange(len(x0)), cnt)
    j = np.repeat(j0, cnt) + np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    xc = x0[e] + (j + 0.5 - y0[e]) * (x1[e] - x0[e]) / (y1[e] - y0[e])
    i = np.clip(np.ceil(xc - 0.5).astype(np.int64), 0, n)
    toggles = np.bincount(j * (n + 1) + i, minlength=n * (n + 1)).reshape(n, n + 1) % 2
    return (np.cumsum(toggles, axis=1)[:, :n] % 2).astype(bool)


SIZES = [4, 8, 16, 32, 64, 128]


def test_boundary_and_box_counts_by_hand():
    mask = np.zeros((6, 6), dtype=bool)
    mask[2:4, 2:4] = True
    b = fr.boundary(mask)
    expected = np.zeros((6, 6), dtype=bool)
    expected[1:5, 2:4] = True
    expected[2:4, 1:5] = True
    assert np.array_equal(b, expected)  # the square and its 4-neighbours, no corners
    assert fr.box_counting(mask, [1, 2, 3, 4, 5]).tolist() == [12, 5, 4, 1, 1]
    assert not fr.boundary(np.ones((4, 5), dtype=bool)).any()


def test_dimension_of_a_straight_boundary_is_one():
    yy, xx = np.mgrid[0:1024, 0:1024] + 0.5
    for mask in (yy < 0.37 * xx + 200.3, xx < 512, (xx - 512) ** 2 + (yy - 500) ** 2 < 400**2):
        d, low, high, counts = fr.box_dimension(mask, SIZES, n_boot=500, seed=1)
        assert d == pytest.approx(1.0, abs=0.05)
        assert low - 1e-12 <= d <= high + 1e-12  # equal when every box scales alike
        assert np.array_equal(counts, fr.box_counting(mask, SIZES))


def test_dimension_of_noise_is_two():
    mask = np.random.default_rng(0).random((1024, 1024)) < 0.5
    d, low, high, _ = fr.box_dimension(mask, SIZES, n_boot=200, seed=0)
    assert d == pytest.approx(2.0, abs=0.05) and low - 1e-12 <= d <= high + 1e-12
    checker = (np.add.outer(np.arange(512), np.arange(512)) % 2).astype(bool)
    assert fr.box_dimension(checker, SIZES[:-1], n_boot=50)[0] == pytest.approx(2.0, abs=1e-12)


def test_dimension_of_the_koch_snowflake():
    n = 4096
    scale = 0.8 * n / 1.2
    poly = (koch_snowflake(7) + [0.1, math.sqrt(3) / 6]) * scale + 0.1 * n  # segments of ~1.1 cells
    mask = polygon_mask(poly, n)
    d, low, high, counts = fr.box_dimension(mask, SIZES + [256], n_boot=1000, seed=0)
    koch = math.log(4) / math.log(3)
    assert d == pytest.approx(koch, abs=0.05)
    assert low < koch < high and high - low < 0.1
    assert (np.diff(counts) < 0).all()


def test_box_dimension_bootstrap_is_deterministic_and_checked():
    mask = np.random.default_rng(1).random((256, 256)) < np.linspace(0, 1, 256)[None, :]
    a = fr.box_dimension(mask, [2, 4, 8, 16, 32], n_boot=100, seed=7)
    b = fr.box_dimension(mask, [32, 16, 8, 4, 2], n_boot=100, seed=np.random.default_rng(7))
    assert a[:3] == b[:3] and np.array_equal(a[3], b[3])
    with pytest.raises(ValueError, match="four"):
        fr.box_dimension(mask, [4, 8, 16], n_boot=10)
    with pytest.raises(ValueError, match="divide"):
        fr.box_dimension(mask, [3, 4, 8, 16], n_boot=10)
    with pytest.raises(ValueError, match="no boundary"):
        fr.box_dimension(np.ones((64, 64), dtype=bool), [2, 4, 8, 16], n_boot=10)
