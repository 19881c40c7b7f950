"""The rules between the keys of the bias1d study's config (and of its figure and claim settings)
that the schema cannot express: the data interval, the bias intervals, the piecewise target, the
figures' runs, the primary-seed and update subsets, and the primary settings of claims 5, 6 and
9. Run by `pipeline.config.validate` before any job; each raises `UserError` with one sentence."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.config import fail, member, ordered, unique


def check(config: Mapping) -> None:
    b = config["bias1d"]
    ordered("bias1d.data", b["data"]["low"], b["data"]["high"], strict=True)
    unique("bias1d.intervals", [iv["name"] for iv in b["intervals"]])
    for iv in b["intervals"]:
        ordered(f"bias1d.intervals ({iv['name']})", iv["low"], iv["high"], strict=True)
    ordered("bias1d.weight_init", b["weight_init"]["low"], b["weight_init"]["high"], strict=True)
    kx, ky = b["piecewise"]["knots_x"], b["piecewise"]["knots_y"]
    if len(kx) != len(ky):
        fail(
            f"Config keys bias1d.piecewise.knots_x ({len(kx)} values) and knots_y ({len(ky)} values) "
            "must have the same length."
        )
    if any(x1 <= x0 for x0, x1 in zip(kx, kx[1:], strict=False)):
        fail(f"Config key bias1d.piecewise.knots_x must be strictly increasing (got {kx}).")
    fig = config["figures"]["bias1d"]
    names = [iv["name"] for iv in b["intervals"]]
    if b["enabled"]:
        seeds = [b["seed_offset"] + k for k in range(b["seeds"])]
        member("figures.bias1d.seed", fig["seed"], seeds, "a seed of the bias1d runs")
        if fig["depth"] is not None:
            member("figures.bias1d.depth", fig["depth"], b["depths"], "a depth of bias1d.depths")
        for name in fig["intervals"]:
            member("figures.bias1d.intervals", name, names, "an interval of bias1d.intervals")
        member("figures.bias1d.momentum", fig["momentum"], b["optimizer"]["momenta"], "a momentum run")
    extra = b["primary_seeds"]
    if b["enabled"]:
        for key, values, what in (
            ("targets", b["targets"], "a target of bias1d.targets"),
            ("depths", b["depths"], "a depth of bias1d.depths"),
            ("momenta", b["optimizer"]["momenta"], "a momentum of bias1d.optimizer.momenta"),
            ("intervals", names, "an interval of bias1d.intervals"),
        ):
            for value in extra[key]:
                member(f"bias1d.primary_seeds.{key}", value, values, what)
        if extra["seeds"] < b["seeds"]:
            fail(
                f"Config key bias1d.primary_seeds.seeds = {extra['seeds']} is below bias1d.seeds = "
                f"{b['seeds']}; it counts the seeds of those runs in all, so give at least that many."
            )
    up = b["updates"]
    if b["enabled"] and up["enabled"]:
        for depth in up["depths"]:
            member("bias1d.updates.depths", depth, b["depths"], "a depth of bias1d.depths")
        for target in up["targets"]:
            member("bias1d.updates.targets", target, b["targets"], "a target of bias1d.targets")
        for name in up["intervals"]:
            member("bias1d.updates.intervals", name, names, "an interval of bias1d.intervals")
        member(
            "figures.bias1d.updates_interval",
            fig["updates_interval"],
            up["intervals"],
            "an interval of bias1d.updates.intervals",
        )
    th = config["report"]["claims"]
    b = config["bias1d"]
    if b["enabled"]:
        its = b["optimizer"]["iterations"]
        budgets = sorted({s for s in b["snapshots"] if s <= its} | {its})
        member("report.claims.bias1d_target", th["bias1d_target"], b["targets"], "a target of bias1d.targets")
        member("report.claims.bias1d_depth", th["bias1d_depth"], b["depths"], "a depth of bias1d.depths")
        member(
            "report.claims.bias1d_momentum",
            th["bias1d_momentum"],
            b["optimizer"]["momenta"],
            "a momentum run",
        )
        member("report.claims.bias1d_iterations", th["bias1d_iterations"], budgets, "a measured iteration")
        widest = max(b["intervals"], key=lambda iv: iv["high"] - iv["low"])["name"]
        narrow = [iv["name"] for iv in b["intervals"] if iv["name"] != widest]
        member(
            "report.claims.bias1d_narrow", th["bias1d_narrow"], narrow, "an interval narrower than the widest"
        )
        up = b["updates"]
        if up["enabled"]:
            what = "a value of bias1d.updates.{} (claim 9 is judged there)"
            member("report.claims.claim9_depth", th["claim9_depth"], up["depths"], what.format("depths"))
            for key, values in (("target", "targets"), ("momentum", "momenta"), ("narrow", "intervals")):
                member(f"report.claims.bias1d_{key}", th[f"bias1d_{key}"], up[values], what.format(values))
