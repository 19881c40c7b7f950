"""The report end to end: claims and page from the smoke run, snakemake --report, incremental
re-runs (dry-run job lists), studies switched off, and the page opened in headless Chromium."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from pipeline import studies
from pipeline.claims import COLUMNS, VERDICTS, all_claims, claims_markdown
from tests.helpers import REPO, copy_repo, fake_mnist_config, small_config, snakemake

pytestmark = pytest.mark.workflow

STUDIES = tuple(s.name for s in studies.STUDIES)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def figure_pngs(work):
    """Every figure PNG the studies and the report drew (results/<study>/**/figures/*.png)."""
    return sorted(p for s in (*STUDIES, "report") for p in (work / "results" / s).rglob("figures/*.png"))


def dry_run_jobs(work, args, extra: dict | None, tmp_path) -> list[tuple[str, list[str]]]:
    """(rule, outputs) of every job `snakemake -n` would run with `extra` config on top of `args`."""
    more = []
    if extra is not None:
        path = tmp_path / "extra.yaml"
        path.write_text(yaml.safe_dump(extra))
        more = [str(path)]
    out = snakemake(work, "-n", *args, *more).stdout
    jobs = []
    for m in re.finditer(r"^(?:local)?rule (\S+):\n((?:    .*\n?)*)", out, flags=re.M):
        outputs = re.search(r"^    output: (.*)$", m.group(2), flags=re.M)
        jobs.append((m.group(1), outputs.group(1).split(", ") if outputs else []))
    return [(rule, outs) for rule, outs in jobs if rule != "all"]


def is_figure_job(outputs) -> bool:
    return bool(outputs) and all(re.match(r"results/[^/]+/(.*/)?figures/", o) for o in outputs)


def is_report_job(outputs) -> bool:
    return bool(outputs) and all(o.startswith("results/report/") for o in outputs)


def test_claims_and_page_from_the_smoke_run(smoke_run):
    work, _ = smoke_run
    claims = pd.read_csv(work / "results" / "report" / "claims.csv")
    assert list(claims.columns[: len(COLUMNS)]) == COLUMNS
    # the provenance: config files in the order merged, the config digest, commit, versions, times
    assert claims["config_files"].iloc[0].startswith("config.yaml, config/smoke.yaml, ")
    assert re.fullmatch(r"[0-9a-f]{64}", claims["config_sha256"].iloc[0])
    assert {"git_commit", "version_torch", "version_snakemake", "version_python", "training_devices"} <= set(
        claims
    )
    assert (claims["training_devices"] == "cpu").all() and (claims["jobs_seconds"] > 0).all()
    summary = claims[claims["part"].eq("all")]
    assert summary["claim_id"].tolist() == [c.claim_id for c in all_claims()]
    assert summary["claim"].tolist() == [c.text for c in all_claims()]
    assert set(claims["verdict"]) <= set(VERDICTS)
    # every study is on in the smoke config: each claim gets a verdict from its data
    not_run = summary[summary["verdict"].eq("not run")]
    assert not_run.empty, not_run.to_string()
    markdown = (work / "results" / "report" / "claims.md").read_text()
    assert markdown.endswith(claims_markdown(claims)) and claims_markdown(claims).count("\n") == 2 + len(
        summary
    )
    assert markdown.startswith("The run: config files `config.yaml, config/smoke.yaml, ")
    assert "Wall time: " in markdown and "torch 2" in markdown

    page = (work / "results" / "report" / "index.html").read_text()
    pngs = figure_pngs(work)
    assert pngs, "the smoke run drew no figures"
    assert page.count('<img src="data:image/png;base64,') == len(pngs)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", page)
    for study in STUDIES:
        assert f'id="study-{study}"' in page and "disabled in config" not in page
    # provenance: the config digest and the wall time of the claims job
    assert re.search(r"<dt>config sha256</dt><dd>[0-9a-f]{64}</dd>", page)
    assert "<td>report/claims</td>" in page


def test_snakemake_report(smoke_run, tmp_path):
    work, args = smoke_run
    out = tmp_path / "snakemake-report.html"
    snakemake(work, *args, "--report", str(out), timeout=600)
    text = out.read_text(errors="replace")
    assert out.stat().st_size > 10_000 and "claims.csv" in text
    for png in figure_pngs(work):
        assert png.name in text


def test_figure_setting_reruns_only_figures_and_report(smoke_run, tmp_path):
    work, args = smoke_run
    assert dry_run_jobs(work, args, None, tmp_path) == []
    jobs = dry_run_jobs(work, args, {"figures": {"dpi": 77}}, tmp_path)
    rules = {rule for rule, _ in jobs}
    others = [(rule, outs) for rule, outs in jobs if not (is_figure_job(outs) or is_report_job(outs))]
    assert not others, f"a figure setting re-runs more than figures and the report: {others}"
    assert "report_html" in rules and "report_claims" not in rules
    drawn = {o for _, outs in jobs for o in outs if o.endswith(".png")}
    assert drawn == {str(p.relative_to(work)) for p in figure_pngs(work)}


def test_claim_threshold_reruns_only_the_report(smoke_run, tmp_path):
    work, args = smoke_run
    jobs = dry_run_jobs(work, args, {"report": {"claims": {"max_gap_points": 7.5}}}, tmp_path)
    assert sorted(rule for rule, _ in jobs) == ["report_claims", "report_figure", "report_html"]


def test_studies_switched_off_give_not_run(tmp_path):
    work = copy_repo(tmp_path / "wf")
    off = {study: {"enabled": False} for study in STUDIES}
    cfg = fake_mnist_config(tmp_path / "mnist", tmp_path / "off.yaml", **off)
    snakemake(work, "--cores", "2", "--configfile", "config/smoke.yaml", str(cfg), timeout=600)
    claims = pd.read_csv(work / "results" / "report" / "claims.csv")
    summary = claims[claims["part"].eq("all")]
    assert (claims["verdict"] == "not run").all() and len(summary) == len(all_claims())
    page = (work / "results" / "report" / "index.html").read_text()
    for study in STUDIES:
        assert f"Not run: the study <code>{study}</code> is disabled in config." in page
        assert not (work / "results" / study).exists()


# ------------------------------------------------------------------ headless Chromium ----

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Injected into a copy of the page (the report itself carries no script): after load, writes
# how many images decoded and how many claim rows exist into <body data-*>, read via --dump-dom.
CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images), body = document.body.dataset;
  body.imagesTotal = images.length;
  body.imagesOk = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  body.claimRows = document.querySelectorAll("#claims-table tbody tr.claim").length;
  body.loaded = "yes";
});
</script>"""


@pytest.fixture(scope="session")
def chromium():
    """The chromium executable; installed with apt-get (Debian package chromium) when missing."""
    for name in ("chromium", "chromium-browser"):
        if exe := shutil.which(name):
            return exe
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        pytest.skip(
            "headless Chromium is not installed (Debian: apt-get install -y chromium) and this is not root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    start = time.monotonic()
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:  # stale package lists: refresh once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0 or not shutil.which("chromium"):
        pytest.skip(f"could not install chromium with apt-get: {proc.stderr.strip().splitlines()[-1:]}")
    print(f"installed chromium with apt-get in {time.monotonic() - start:.0f} s")
    return shutil.which("chromium")


def run_chromium(exe, tmp_path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def browser_check(exe, page_path, tmp_path) -> dict[str, str]:
    """Open a copy of `page_path` with CHECK_SCRIPT in headless Chromium; the body's data-* values."""
    copy = tmp_path / f"check-{page_path.stem}.html"
    copy.write_text(page_path.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    proc = run_chromium(exe, tmp_path, "--virtual-time-budget=5000", "--dump-dom", copy.as_uri())
    body = re.search(r"<body([^>]*)>", proc.stdout)
    assert body, f"chromium printed no DOM: {proc.stderr[-2000:]}"
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))


def test_report_in_headless_chromium(smoke_run, chromium, tmp_path):
    work, _ = smoke_run
    page = work / "results" / "report" / "index.html"
    n_figures = len(figure_pngs(work))
    state = browser_check(chromium, page, tmp_path)
    assert state.get("loaded") == "yes", state
    assert state["claim-rows"] == str(len(all_claims()))
    assert int(state["images-total"]) == n_figures > 0
    assert state["images-ok"] == state["images-total"]

    # the check can fail: a page whose first image is corrupt reports one image fewer
    broken = tmp_path / "broken.html"
    broken.write_text(
        re.sub(r"(data:image/png;base64,)[A-Za-z0-9+/]{40}", r"\1AAAA", page.read_text(), count=1)
    )
    state = browser_check(chromium, broken, tmp_path)
    assert int(state["images-ok"]) == n_figures - 1

    shot = tmp_path / "report.png"
    proc = run_chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_sweep_grid_change_reruns_only_the_new_bias1d_shards(smoke_run, tmp_path):
    """Adding a depth to the 1-D study's grid trains only the new depth's shard."""
    work, args = smoke_run
    depths = small_config()["bias1d"]["depths"]
    new = max(depths) + 4
    jobs = dry_run_jobs(work, args, {"bias1d": {"depths": [*depths, new]}}, tmp_path)
    train = [outs for rule, outs in jobs if rule == "bias1d_shard"]
    assert train and all(f"/L{new}/" in o for outs in train for o in outs), train
    downstream = {rule for rule, outs in jobs if rule != "bias1d_shard"}
    assert "bias1d_aggregate" in downstream and {"report_claims", "report_html"} <= downstream
    stray = [
        (r, o)
        for r, o in jobs
        if r not in ("bias1d_shard", "bias1d_aggregate") and not (is_figure_job(o) or is_report_job(o))
    ]
    assert not stray, stray


def test_sweep_grid_change_reruns_only_the_new_stability_shard(smoke_run, tmp_path):
    """Adding a depth to the scalar sweep runs one new shard, then only the scalar aggregate,
    the figures drawn from it and the report: no other study's shards, aggregates or figures."""
    work, args = smoke_run
    depths = small_config()["stability"]["scalar"]["depths"]
    new = max(depths) + 1
    jobs = dry_run_jobs(work, args, {"stability": {"scalar": {"depths": [*depths, new]}}}, tmp_path)
    shards = [outs for rule, outs in jobs if rule == "stability_shard"]
    assert shards and all(o.startswith(f"results/stability/scalar/shards/L{new}/") for s in shards for o in s)
    aggregates = [outs for rule, outs in jobs if rule == "stability_aggregate"]
    assert aggregates and all(o.startswith("results/stability/scalar/") for s in aggregates for o in s)
    rest = [(r, o) for r, o in jobs if r not in ("stability_shard", "stability_aggregate")]
    assert {r for r, _ in rest} >= {"report_claims", "report_html"}
    assert all(is_figure_job(o) or is_report_job(o) for _, o in rest), rest
    figures = {o for _, outs in rest for o in outs if o.endswith(".png") and "/report/" not in o}
    # the depth and single-vs-double figures do not read the scalar table
    assert figures and not {"results/stability/figures/depth.png"} & figures, figures


@pytest.mark.parametrize(
    "study, key, value", [("mnist", "train_color", "#000000"), ("bias1d", "log_drift", False)]
)
def test_one_studys_figure_setting_reruns_only_its_figures(smoke_run, tmp_path, study, key, value):
    work, args = smoke_run
    block = small_config()["figures"].get(study, {})
    if key not in block:
        pytest.skip(f"figures.{study} has no key {key}")
    jobs = dry_run_jobs(work, args, {"figures": {study: {key: value}}}, tmp_path)
    stray = [
        (r, o)
        for r, o in jobs
        if not (is_report_job(o) or (is_figure_job(o) and o[0].startswith(f"results/{study}/")))
    ]
    assert not stray, f"figures.{study}.{key} re-runs other jobs: {stray}"
    assert any(is_figure_job(o) for _, o in jobs) and "report_html" in {r for r, _ in jobs}


def test_keys_that_change_no_number_rerun_nothing(smoke_run, tmp_path):
    work, args = smoke_run
    runtime = {
        "mnist_dir": str(tmp_path),
        "data": {"timeout_s": 5, "mirrors": ["https://example.org/mnist"]},
        **{name: {"threads": 2} for name in STUDIES},
        "mnist": {"threads": 2, "gpu": 1},
    }
    assert dry_run_jobs(work, args, runtime, tmp_path) == []


def test_params_do_not_depend_on_the_order_config_files_are_merged(smoke_run, tmp_path):
    work, args = smoke_run
    # the same values, merged in another key order
    assert dry_run_jobs(work, ("--configfile", "config.yaml", *args[1:]), None, tmp_path) == []
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"figures": {"dpi": small_config()["figures"]["dpi"]}}))
    assert dry_run_jobs(work, ("--configfile", str(mine), *args[1:]), None, tmp_path) == []


# ------------------------------------------------------------------ results follow the code --


@contextlib.contextmanager
def edited(path, change):
    """`path` with `change(text)` written to it for the duration, then its text as it was."""
    text = path.read_text()
    try:
        path.write_text(change(text))
        yield
    finally:
        path.write_text(text)


def rules_of(jobs) -> set[str]:
    return {rule for rule, _ in jobs}


REPORT_JOBS = {"report_claims", "report_figure", "report_html"}
SHARDS = {k.rule for s in studies.STUDIES for k in s.kinds}


def test_a_figure_function_edit_redraws_that_studys_figures_and_the_report(smoke_run, tmp_path):
    work, args = smoke_run
    path = work / "pipeline" / "stability" / "figures.py"
    with edited(path, lambda t: t + "\nEDITED = 1\n"):
        jobs = dry_run_jobs(work, args, None, tmp_path)
    assert rules_of(jobs) == {"stability_figure", "report_html"}, jobs
    drawn = {o for _, outs in jobs for o in outs if o.endswith(".png")}
    assert drawn == {f"results/stability/figures/{f}.png" for f in studies.get("stability").figures}


def loads_module(module: str, target: str) -> bool:
    """Whether importing `module` in a fresh interpreter loads `target`."""
    code = f"import sys, {module}; print({target!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_an_engine_edit_reruns_the_shards_of_its_users_only(smoke_run, tmp_path):
    work, args = smoke_run
    with edited(work / "pipeline" / "linear" / "network.py", lambda t: t + "\nEDITED = 1\n"):
        jobs = dry_run_jobs(work, args, None, tmp_path)
    shards = rules_of(jobs) & SHARDS
    # exactly the shards of the studies whose study module loads the engine when imported
    # (asked of Python itself, not of the digest's reading of the imports)
    users = [s for s in studies.STUDIES if loads_module(s.module("study"), "pipeline.linear.network")]
    assert {"stability", "stepsize"} <= {s.name for s in users}
    assert shards == {k.rule for s in users for k in s.kinds}, shards
    assert len([r for r, _ in jobs if r == "stability_shard"]) == len(
        studies.get("stability").jobs(small_config())
    )
    assert not rules_of(jobs) & {"bias1d_aggregate", "mnist_aggregate", "bias1d_figure", "mnist_figure"}
    with edited(work / "pipeline" / "bias1d" / "model.py", lambda t: t + "\nEDITED = 1\n"):
        assert rules_of(dry_run_jobs(work, args, None, tmp_path)) & SHARDS == {"bias1d_shard"}


def test_a_shared_module_edit_reruns_its_users(smoke_run, tmp_path):
    work, args = smoke_run
    # the interval methods are used by the claims only
    with edited(work / "pipeline" / "stats.py", lambda t: t + "\nEDITED = 1\n"):
        assert rules_of(dry_run_jobs(work, args, None, tmp_path)) == {
            "report_claims",
            "report_figure",
            "report_html",
        }
    # the registry is read by every shard, aggregate and report script
    with edited(work / "pipeline" / "studies.py", lambda t: t + "\nEDITED = 1\n"):
        assert SHARDS <= rules_of(dry_run_jobs(work, args, None, tmp_path))


def test_touch_comment_and_docstring_edits_rerun_nothing(smoke_run, tmp_path):
    work, args = smoke_run
    for path in [*(work / "workflow" / "scripts").glob("*.py"), *(work / "pipeline").rglob("*.py")]:
        path.touch()
    assert dry_run_jobs(work, args, None, tmp_path) == []
    engine = work / "pipeline" / "linear" / "descent.py"

    def reword(text):
        return text.replace('"""Fixed-step', '"""Reworded: fixed-step', 1).replace("\n", "  # note\n", 3)

    with edited(engine, reword):
        assert dry_run_jobs(work, args, None, tmp_path) == []
    with edited(work / "workflow" / "scripts" / "figure.py", lambda t: t + "\n# a comment\n"):
        assert dry_run_jobs(work, args, None, tmp_path) == []
