"""The rules between the keys of the edge study's config (and of its figure and claim settings)
that the schema cannot express: the windows and the map's boxes, the typical run of the figures,
and the map claim 11 is judged on. Run by `pipeline.config.validate` before any job; each raises
`UserError` with one sentence."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.config import fail, member, ordered


def check(config: Mapping) -> None:
    e = config["edge"]
    sc, mp = e["scalar"], e["maps"]
    if e["tol_window"] > sc["iterations"] + 1:
        fail(
            f"Config key edge.tol_window = {e['tol_window']} is longer than a scalar run "
            f"(edge.scalar.iterations + 1 = {sc['iterations'] + 1}); shorten it."
        )
    if e["matrix"]["every"] > e["matrix"]["iterations"]:
        fail("Config key edge.matrix.every must be at most edge.matrix.iterations.")
    ordered("edge.matrix.eig_low/eig_high", e["matrix"]["eig_low"], e["matrix"]["eig_high"])
    sizes = sorted(mp["box_sizes"])
    if any(sizes[-1] % k for k in sizes):
        fail(f"Config key edge.maps.box_sizes: every size must divide the largest ({sizes}).")
    if sizes[-1] > mp["resolution"]:
        fail(
            f"Config key edge.maps.box_sizes: the largest box ({sizes[-1]}) exceeds the map's "
            f"resolution ({mp['resolution']})."
        )
    for key in ("delta_factor", "a"):
        low, high = mp["delta_a"][key]
        ordered(f"edge.maps.delta_a.{key}", low, high, strict=True)
    th = config["report"]["claims"]
    if e["enabled"] and mp["enabled"]:
        run = [m for m in ("delta_a", "w1_w2") if mp[m]["enabled"] and mp[m]["depths"]]
        member("report.claims.claim11_map", th["claim11_map"], run, "a map that is run")
    typical = config["figures"]["edge"]["typical"]
    if e["enabled"] and sc["enabled"] and sc["depths"]:
        key = "figures.edge.typical"
        member(f"{key}.depth", typical["depth"], sc["depths"], "a depth of edge.scalar.depths")
        member(f"{key}.init", typical["init"], sc["inits"], "a start of edge.scalar.inits")
        member(f"{key}.target", typical["target"], sc["targets"], "a target of edge.scalar.targets")
        member(
            f"{key}.data_scale",
            typical["data_scale"],
            sc["data_scales"],
            "a scale of edge.scalar.data_scales",
        )
        seeds = list(range(min(sc["seeds"], sc["trace_seeds"])))
        member(
            f"{key}.seed", typical["seed"], seeds, "a seed whose traces are kept (edge.scalar.trace_seeds)"
        )
