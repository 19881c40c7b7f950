"""The rules between the keys of the stability study's config (and of its figure and claim
settings) that the schema cannot express: the scalar step grid, the regimes, the typical run of
the figures, and the primary settings of claims 3 and 4. Run by `pipeline.config.validate`
before any job; each raises `UserError` with one sentence."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.config import fail, member, ordered, unique


def check(config: Mapping) -> None:
    st = config["stability"]
    sc = st["scalar"]
    if sc["delta_num"] > 0:
        ordered("stability.scalar.delta_min/delta_max", sc["delta_min"], sc["delta_max"])
    if sc["delta_num"] == 0 and not sc["delta_factors"]:
        fail("Config keys stability.scalar.delta_num = 0 and delta_factors = [] leave no step size; set one.")
    ordered("stability.depth.eig_low/eig_high", st["depth"]["eig_low"], st["depth"]["eig_high"])
    svd = st["single_vs_double"]
    unique("stability.single_vs_double.regimes", [r["name"] for r in svd["regimes"]])
    for reg in svd["regimes"]:
        ordered(f"stability.single_vs_double.regimes ({reg['name']})", reg["low"], reg["high"])
    if not svd["deltas"] and not svd["delta_rel"]:
        fail("Config keys stability.single_vs_double.deltas and delta_rel are both empty; set a step.")
    typical = config["figures"]["stability"]["typical"]
    if st["enabled"] and svd["enabled"]:
        key = "figures.stability.typical"
        member(f"{key}.regime", typical["regime"], [r["name"] for r in svd["regimes"]], "a regime run")
        member(f"{key}.depth", typical["depth"], svd["depths"], "a depth of stability.single_vs_double")
        member(f"{key}.delta_rel", typical["delta_rel"], svd["delta_rel"], "a relative step run")
        member(f"{key}.seed", typical["seed"], list(range(svd["seeds"])), "a seed run")
    th = config["report"]["claims"]
    if st["enabled"] and sc["enabled"]:
        member(
            "report.claims.claim1_random_init",
            th["claim1_random_init"],
            sc["inits"],
            "a start of stability.scalar.inits",
        )
    if st["enabled"] and st["depth"]["enabled"]:
        member(
            "report.claims.claim3_delta_t1_factor",
            th["claim3_delta_t1_factor"],
            st["depth"]["delta_t1_factors"],
            "a factor of stability.depth.delta_t1_factors",
        )
    if st["enabled"] and st["single_vs_double"]["enabled"]:
        regimes = [r["name"] for r in st["single_vs_double"]["regimes"]]
        for key in ("claim4_speed_regime", "claim4_stall_regime"):
            member(f"report.claims.{key}", th[key], regimes, "a regime of stability.single_vs_double")
