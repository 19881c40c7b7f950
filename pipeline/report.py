"""The HTML report: one self-contained page (claims, figures, provenance), no external requests.

The page is rendered from the Jinja2 template `templates/report.html.j2`; figures are
embedded as base64 PNG data URIs and the CSS is inline, so the file opens the same anywhere,
offline. Captions are the figures' reStructuredText files rendered to HTML by docutils.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
from docutils.core import publish_parts
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipeline.studies import STUDIES

REPORT_TITLE = "Robustness of the verdicts over the settings the paper left open"

PACKAGES = (
    "torch",
    "snakemake",
    "pandas",
    "numpy",
    "seaborn",
    "matplotlib",
    "pyarrow",
    "jsonschema",
    "pyyaml",
    "jinja2",
    "docutils",
    "tqdm",
)
BENCHMARK_COLUMNS = ["job", "study", "s", "max_rss", "cpu_time", "end"]
VERDICT_ORDER = ("supported", "not supported", "inconclusive", "not run")
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class Figure:
    name: str
    png: Path
    caption: str = ""  # HTML


@dataclass
class Section:
    study: str
    title: str
    enabled: bool
    figures: list[Figure] = field(default_factory=list)


# ------------------------------------------------------------------------ captions --------


def rst_to_html(text: str) -> tuple[str, list[str]]:
    """A reStructuredText caption as an HTML fragment, and docutils' messages about it.

    An empty message list means the caption rendered cleanly (no undefined substitution,
    no unknown role, no malformed markup); messages are collected, never printed.
    """
    stream = io.StringIO()
    parts = publish_parts(
        text,
        writer="html5",
        settings_overrides={
            "report_level": 2,  # warnings and errors
            "halt_level": 5,  # never raise
            "warning_stream": stream,
            "embed_stylesheet": False,
            "doctitle_xform": False,
        },
    )
    messages = [line for line in stream.getvalue().splitlines() if line.strip()]
    return parts["body"], messages


def caption_html(png: str | Path, study: str, captions: Sequence[str | Path]) -> str:
    """The rendered caption of `png`: the file `<study>_<stem>.rst` among `captions` ('' if none)."""
    name = f"{study}_{Path(png).stem}.rst"
    for path in map(Path, captions):
        if path.name == name and path.is_file():
            return rst_to_html(path.read_text())[0]
    return ""


# ------------------------------------------------------------------------ inputs ----------


def png_data_uri(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def git_state(repo: str | Path) -> str:
    """'<commit> (clean)' / '<commit> (dirty: uncommitted changes)', or why there is none."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git is not available)"
    if head.returncode != 0:
        err = head.stderr.lower()
        if "not a git repository" in err:
            return "unknown (the workflow folder is not a git repository)"
        return "unknown (no commit yet)" if "head" in err else "unknown (git failed)"
    status = git("status", "--porcelain", "--untracked-files=no")
    dirty = "dirty: uncommitted changes" if status.stdout.strip() else "clean"
    return f"{head.stdout.strip()} ({dirty})"


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info() -> dict[str, str]:
    info = {
        "host OS": f"{platform.system()} {platform.release()}",
        "CPU": f"{cpu_model()}, {os.cpu_count()} logical cores",
    }
    try:
        import torch

        if torch.cuda.is_available():
            names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            info["CUDA"] = f"available: {names} (CUDA {torch.version.cuda})"
        else:
            info["CUDA"] = "not available (torch runs on the CPU)"
    except ImportError:
        info["CUDA"] = "unknown (torch not installed)"
    return info


def config_digest(config: Mapping) -> str:
    """sha256 of the canonical JSON of the config (sorted keys, no whitespace)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _mean(tsv: pd.DataFrame, col: str) -> float:
    return float(pd.to_numeric(tsv[col], errors="coerce").mean()) if col in tsv else math.nan


def read_benchmarks(paths: Sequence[str | Path], folder: str | Path = "results/benchmarks") -> pd.DataFrame:
    """Per-job wall times from the Snakemake benchmark TSVs `paths` of a run's jobs (one row per
    file; missing or empty files are skipped).

    `job` is the file's path below `folder` without `.tsv`; `study` its first folder; `end` the
    file's modification time (when its job ended). Repeated benchmarks (several rows in one
    file) are averaged.
    """
    rows = []
    for path in map(Path, sorted(map(str, paths))):
        try:
            tsv = pd.read_csv(path, sep="\t")
        except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if tsv.empty or "s" not in tsv:
            continue
        rel = (
            path.relative_to(folder).with_suffix("") if path.is_relative_to(folder) else path.with_suffix("")
        )
        rows.append(
            {
                "job": rel.as_posix(),
                "study": rel.parts[0] if len(rel.parts) > 1 else "",
                "s": float(tsv["s"].mean()),
                "max_rss": _mean(tsv, "max_rss"),
                "cpu_time": _mean(tsv, "cpu_time"),
                "end": path.stat().st_mtime,
            }
        )
    return pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)


def build_sections(
    figures: Mapping[str, Sequence[str]], enabled: Mapping[str, bool], captions: Sequence[str | Path]
) -> list[Section]:
    """One section per study (known studies first, in STUDY_TITLES order, then any others).

    `captions` are the caption files (`<study>_<figure stem>.rst`) to take the captions from.
    """
    titles = {s.name: s.title for s in STUDIES} | {"report": REPORT_TITLE}
    listed = set(figures) | set(enabled)
    studies = [s for s in titles if s in listed] + sorted(listed - set(titles))
    sections = []
    for study in studies:
        pngs = list(figures.get(study, []))
        section = Section(study, titles.get(study, study), bool(enabled.get(study, bool(pngs))))
        for png in pngs:
            section.figures.append(Figure(Path(png).stem, Path(png), caption_html(png, study, captions)))
        sections.append(section)
    return sections


# ------------------------------------------------------------------------ rendering -------

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #dde1e8; --bg: #ffffff; --panel: #f6f7f9;
  --ok: #1a7f37; --ok-bg: #dcf5e3; --bad: #b42318; --bad-bg: #fde4e1; --na: #5b6475; --na-bg: #eceef2; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); background: var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 28px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 40px 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 24px 0 8px; }
p.sub { color: var(--muted); margin: 0 0 20px; }
nav { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 18px; }
nav ol { margin: 4px 0; padding-left: 20px; } nav a { color: #1f4e99; text-decoration: none; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; vertical-align: top; padding: 7px 10px; border-bottom: 1px solid var(--line); }
th { background: var(--panel); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id { width: 2.5em; font-weight: 600; }
td.claim { width: 34%; } td.verdict { width: 9.5em; } td.evidence { color: #2f3747; font-size: 13px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 13px; font-weight: 600;
  white-space: nowrap; }
.badge.supported { color: var(--ok); background: var(--ok-bg); }
.badge.not-supported { color: var(--bad); background: var(--bad-bg); }
.badge.not-run { color: var(--na); background: var(--na-bg); }
.badge.inconclusive { color: #8a5a00; background: #fdf1d6; }
.badge.fragile { color: #8a5a00; background: #fff; border: 1px solid #e3a008; }
tr.part td { font-size: 13px; color: #2f3747; background: #fbfbfc; }
tr.part td.claim { padding-left: 22px; }
.summary { margin: 8px 0 14px; } .summary .badge { margin-right: 6px; }
figure { margin: 18px 0 28px; padding: 14px; border: 1px solid var(--line); border-radius: 8px; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { margin-top: 10px; color: #2f3747; font-size: 14px; }
figcaption b { display: block; margin-bottom: 2px; } figcaption p { margin: 4px 0; }
.notrun { color: var(--muted); font-style: italic; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dt { font-weight: 600; }
dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px;
  word-break: break-all; }
details { margin-top: 10px; } summary { cursor: pointer; color: #1f4e99; }
footer { margin-top: 48px; color: var(--muted); font-size: 13px; }
"""


def _title(name: str) -> str:
    """A figure's file stem as a heading: 'single_vs_double' -> 'Single vs double'."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data_uri"] = png_data_uri
    env.filters["title"] = _title
    env.filters["css_class"] = lambda verdict: verdict.replace(" ", "-")
    env.filters["num"] = lambda x: "" if x is None or x != x else f"{x:.3g}"
    return env


def _benchmark_tables(bench: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    if bench.empty:
        return [], []
    per_study = bench.groupby("study", sort=True)["s"].agg(["count", "sum", "max"]).reset_index()
    studies = [
        {"study": r.study or "(top level)", "jobs": int(r["count"]), "total": r["sum"], "longest": r["max"]}
        for _, r in per_study.iterrows()
    ]
    return studies, bench.sort_values(["study", "job"]).to_dict("records")


def render_html(
    claims: pd.DataFrame,
    sections: Sequence[Section],
    provenance: Mapping[str, str],
    benchmarks: pd.DataFrame,
    title: str = "Residual networks: Lyapunov stability and convex decomposition, reproduced",
) -> str:
    """The whole report page as one string."""
    summary = claims[claims["part"].eq("all")]
    counts = summary["verdict"].value_counts()
    studies, jobs = _benchmark_tables(benchmarks)
    grouped = [
        {
            "summary": rows[rows["part"].eq("all")].iloc[0].to_dict(),
            "parts": rows[~rows["part"].eq("all")].to_dict("records"),
        }
        for _, rows in claims.groupby("claim_id", sort=True)
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title,
        css=CSS,
        built=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        claims=grouped,
        verdict_counts=[(v, int(counts[v])) for v in VERDICT_ORDER if v in counts],
        sections=sections,
        provenance=provenance,
        bench_studies=studies,
        bench_jobs=jobs,
    )


def run_times(benchmarks: pd.DataFrame) -> dict[str, float]:
    """From the benchmark table of a run's jobs (`read_benchmarks`): `jobs_seconds`, the sum of
    their wall times, and `elapsed_seconds`, from the start of the first to the end of the last
    (a file is written when its job ends; its start is that minus its wall time)."""
    if benchmarks.empty:
        return {"jobs_seconds": math.nan, "elapsed_seconds": math.nan}
    start = (benchmarks["end"] - benchmarks["s"]).min()
    return {
        "jobs_seconds": float(benchmarks["s"].sum()),
        "elapsed_seconds": float(benchmarks["end"].max() - start),
    }


def provenance(
    repo: str | Path, config_files: Sequence[str], digest: str, devices: Sequence[str] = ()
) -> dict:
    """What produced the results, as label -> text: the config files given (in order), the digest
    of the merged config, the git commit and whether the tree was dirty, the versions, the
    machine, and the devices the studies trained on (e.g. the MNIST runs' `device` column)."""
    items = {"config files": ", ".join(map(str, config_files)) or "(none)", "config sha256": digest}
    items["git commit"] = git_state(repo)
    items.update({f"version {k}": v for k, v in package_versions().items()})
    items.update(device_info())
    items["training devices"] = ", ".join(sorted(set(devices))) or "cpu"
    return items


def column(label: str) -> str:
    """The claims.csv column of a provenance label: 'version torch' -> 'version_torch'."""
    return label.lower().replace(" ", "_")


def results_markdown(items: Mapping[str, str], times: Mapping[str, float], claims_table: str) -> str:
    """claims.md: a paragraph saying what ran (from the provenance and the job times), how to
    read the verdicts, then the claims table (`pipeline.claims.claims_markdown`)."""
    versions = ", ".join(
        f"{k.removeprefix('version ')} {v}" for k, v in items.items() if k.startswith("version ")
    )
    minutes = (
        f"{times['elapsed_seconds'] / 60:.1f} min from the first job's start to the last job's end "
        f"({times['jobs_seconds'] / 60:.1f} min summed over jobs)"
        if math.isfinite(times.get("elapsed_seconds", math.nan))
        else "unknown (no benchmark files)"
    )
    ran = (
        f"The run: config files `{items.get('config files', '?')}` (merged config sha256 "
        f"`{items.get('config sha256', '?')[:12]}`), commit `{items.get('git commit', '?')}`, "
        f"{items.get('CPU', '?')}, CUDA {items.get('CUDA', '?')}, "
        f"trained on {items.get('training devices', '?')}; "
        f"{versions}. Wall time: {minutes}."
    )
    how = (
        "Verdicts: **supported** when the whole 95 % interval lies on the claim's side of its "
        "threshold, **not supported** when it lies on the other side, **inconclusive** when it "
        'straddles it; "supported at" counts the settings of the claim\'s robustness grid where '
        "it also holds."
    )
    return f"{ran}\n\n{how}\n\n{claims_table}"


def readme_block(
    markdown: str, readme: str, begin: str = "<!-- results:begin -->", end: str = "<!-- results:end -->"
) -> str:
    """`readme` with the text between its `begin` and `end` markers replaced by `markdown`."""
    if begin not in readme or end not in readme:
        raise ValueError(f"the README has no {begin} ... {end} block")
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{markdown.rstrip()}\n{end}{tail}"


def main(argv: Sequence[str]) -> None:
    """`python -m pipeline.report readme CLAIMS_MD README`: copy a run's claims.md (provenance
    header and claims table) into the README's results block."""
    if len(argv) != 3 or argv[0] != "readme":
        raise SystemExit("usage: python -m pipeline.report readme results/report/claims.md README.md")
    readme = Path(argv[2])
    readme.write_text(readme_block(Path(argv[1]).read_text(), readme.read_text()))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
