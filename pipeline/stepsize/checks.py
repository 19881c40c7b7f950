"""The rules between the keys of the stepsize study's config (and of its figure and claim settings)
that the schema cannot express: the rules, the step factors, the matrix families and the
figures' reference factor. Run by `pipeline.config.validate` before any job; each raises
`UserError` with one sentence."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.config import fail, member, ordered, unique


def check(config: Mapping) -> None:
    s = config["stepsize"]
    if "fixed" not in s["rules"]:
        fail(
            "Config key stepsize.rules must include fixed: every other rule is compared with the "
            "best fixed step."
        )
    if any(b <= a for a, b in zip(s["factors"], s["factors"][1:], strict=False)):
        fail(f"Config key stepsize.factors must be strictly increasing (got {s['factors']}).")
    families = s["matrix"]["families"]
    unique("stepsize.matrix.families", [f["name"] for f in families])
    for fam in families:
        ordered(f"stepsize.matrix.families ({fam['name']})", fam["low"], fam["high"])
    member("stepsize.a_priori_factor", s["a_priori_factor"], s["factors"], "a factor of stepsize.factors")
    if s["enabled"] and "curvature" in s["rules"] and 1 not in s["curvature"]["refresh_every"]:
        fail(
            "Config key stepsize.curvature.refresh_every must include 1: claim 8 is judged on the rule "
            "as stated, with lambda_max at every iterate."
        )
    if s["enabled"]:
        ref = config["figures"]["stepsize"]["reference_factor"]
        member("figures.stepsize.reference_factor", ref, s["factors"], "a factor of stepsize.factors")
