"""The HTML report: one self-contained page (claims, figures, provenance), no external requests.

Figures are embedded as base64 PNG data URIs and the CSS is inline, so the file opens the
same anywhere, offline. Captions are the reStructuredText files of the figures, shown as
plain paragraphs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

# Study keys in report order, with their section titles.
STUDY_TITLES = {
    "stability": "Lyapunov stability of gradient descent (SPEC sections 1-2)",
    "bias1d": "Convex residual pairs in 1-D: bias initialisation (SPEC sections 3-4)",
    "mnist": "MNIST with 20 convex residual networks (SPEC section 5)",
}
PACKAGES = (
    "torch",
    "torchvision",
    "snakemake",
    "pandas",
    "numpy",
    "seaborn",
    "matplotlib",
    "pyarrow",
    "jsonschema",
    "pyyaml",
)
BENCHMARK_COLUMNS = ["job", "study", "s", "max_rss", "cpu_time"]


@dataclass
class Figure:
    name: str
    png: Path
    caption: list[str] = field(default_factory=list)


@dataclass
class Section:
    study: str
    title: str
    enabled: bool
    figures: list[Figure] = field(default_factory=list)


# ------------------------------------------------------------------------ inputs ----------


def rst_to_paragraphs(text: str) -> list[str]:
    """Plain-text paragraphs of a short reStructuredText caption (markup removed)."""
    text = re.sub(r":[a-z]+:`([^`]*)`", r"\1", text)  # roles such as :math:`x`
    text = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", text)  # `text <url>`_
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r"`([^`]*)`_*", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\1", text)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.splitlines()]
        lines = [ln for ln in lines if ln and not re.fullmatch(r"([=\-~^\"'`#*+.])\1{2,}", ln)]
        lines = [ln for ln in lines if not ln.startswith(".. ")]
        if lines:
            paragraphs.append(" ".join(lines))
    return paragraphs


def caption_for(png: str | Path, study: str, captions: Sequence[str | Path]) -> list[str]:
    """The caption paragraphs of `png`: the file `<study>_<stem>.rst` among `captions` ([] if none)."""
    name = f"{study}_{Path(png).stem}.rst"
    for path in map(Path, captions):
        if path.name == name and path.is_file():
            return rst_to_paragraphs(path.read_text())
    return []


def caption_files(figures: Mapping[str, Sequence[str]], caption_dir: str | Path) -> list[str]:
    """The caption files that exist for the registered figures, `<study>_<stem>.rst`."""
    paths = [
        Path(caption_dir) / f"{study}_{Path(png).stem}.rst" for study, pngs in figures.items() for png in pngs
    ]
    return [str(p) for p in paths if p.is_file()]


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


def read_benchmarks(folder: str | Path) -> pd.DataFrame:
    """Per-job wall times from Snakemake's benchmark TSVs under `folder` (one row per file).

    `job` is the file's path below `folder` without `.tsv`; `study` its first folder. Repeated
    benchmarks (several rows in one file) are averaged.
    """
    folder = Path(folder)
    rows = []
    for path in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        try:
            tsv = pd.read_csv(path, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if tsv.empty or "s" not in tsv:
            continue
        rel = path.relative_to(folder).with_suffix("")
        rows.append(
            {
                "job": rel.as_posix(),
                "study": rel.parts[0] if len(rel.parts) > 1 else "",
                "s": float(tsv["s"].mean()),
                "max_rss": float(pd.to_numeric(tsv.get("max_rss"), errors="coerce").mean())
                if "max_rss" in tsv
                else float("nan"),
                "cpu_time": float(pd.to_numeric(tsv.get("cpu_time"), errors="coerce").mean())
                if "cpu_time" in tsv
                else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)


def build_sections(
    figures: Mapping[str, Sequence[str]], enabled: Mapping[str, bool], captions: Sequence[str | Path]
) -> list[Section]:
    """One section per study (known studies first, in STUDY_TITLES order, then any others).

    `captions` are the caption files (`<study>_<figure stem>.rst`) to take the captions from.
    """
    studies = list(STUDY_TITLES) + sorted(set(figures) - set(STUDY_TITLES))
    sections = []
    for study in studies:
        pngs = list(figures.get(study, []))
        section = Section(study, STUDY_TITLES.get(study, study), bool(enabled.get(study, bool(pngs))))
        for png in pngs:
            section.figures.append(Figure(Path(png).stem, Path(png), caption_for(png, study, captions)))
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


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _title(name: str) -> str:
    """A figure's file stem as a heading: 'single_vs_double' -> 'Single vs double'."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _badge(verdict: str) -> str:
    return f'<span class="badge {verdict.replace(" ", "-")}">{_e(verdict)}</span>'


def _claims_table(claims: pd.DataFrame) -> str:
    rows = "".join(
        f'<tr><td class="id">{int(r.claim_id)}</td><td class="claim">{_e(r.claim)}</td>'
        f'<td class="verdict">{_badge(r.verdict)}</td><td class="evidence">{_e(r.evidence)}</td></tr>'
        for r in claims.itertuples()
    )
    counts = claims["verdict"].value_counts()
    summary = " ".join(
        f"{_badge(v)}&times;{int(counts[v])}"
        for v in ("supported", "not supported", "not run")
        if v in counts
    )
    return (
        f'<p class="summary">{summary}</p>'
        '<table id="claims-table"><thead><tr><th>#</th><th>Claim (SPEC section 6)</th><th>Verdict</th>'
        f"<th>Evidence (measured)</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _section(section: Section) -> str:
    out = [f'<section id="study-{_e(section.study)}"><h2>{_e(section.title)}</h2>']
    if not section.enabled:
        out.append(
            f'<p class="notrun">Not run: the study <code>{_e(section.study)}</code> '
            "is disabled in config.</p>"
        )
    elif not section.figures:
        out.append('<p class="notrun">No figures registered for this study.</p>')
    for fig in section.figures:
        caption = "".join(f"<p>{_e(p)}</p>" for p in fig.caption)
        out.append(
            f'<figure id="fig-{_e(section.study)}-{_e(fig.name)}"><img src="{png_data_uri(fig.png)}" '
            f'alt="{_e(fig.name)}"><figcaption><b>{_e(_title(fig.name))}</b>{caption}</figcaption></figure>'
        )
    out.append("</section>")
    return "".join(out)


def _dl(items: Mapping[str, str]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items.items()) + "</dl>"


def _benchmarks(bench: pd.DataFrame) -> str:
    if bench.empty:
        return '<p class="notrun">No benchmark files found under results/benchmarks/.</p>'
    per_study = bench.groupby("study", sort=True)["s"].agg(["count", "sum", "max"])
    head = "".join(
        f'<tr><td>{_e(s or "(top level)")}</td><td class="num">{int(r["count"])}</td>'
        f'<td class="num">{r["sum"]:.1f}</td><td class="num">{r["max"]:.1f}</td></tr>'
        for s, r in per_study.iterrows()
    )
    summary_table = (
        "<table><thead><tr><th>Study</th><th>Jobs</th><th>Total wall time (s)</th><th>Longest job (s)</th>"
        f"</tr></thead><tbody>{head}</tbody></table>"
    )
    rows = "".join(
        f'<tr><td>{_e(r.job)}</td><td class="num">{r.s:.2f}</td><td class="num">{r.cpu_time:.2f}</td>'
        f'<td class="num">{r.max_rss:.0f}</td></tr>'
        for r in bench.sort_values(["study", "job"]).itertuples()
    )
    jobs = (
        f"<details><summary>All {len(bench)} jobs</summary><table><thead><tr><th>Job (benchmark file)</th>"
        "<th>Wall (s)</th><th>CPU (s)</th><th>Max RSS (MB)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></details>"
    )
    return summary_table + jobs


def render_html(
    claims: pd.DataFrame,
    sections: Sequence[Section],
    provenance: Mapping[str, str],
    benchmarks: pd.DataFrame,
    title: str = "Residual networks: Lyapunov stability and convex decomposition, reproduced",
) -> str:
    """The whole report page as one string."""
    toc = ['<li><a href="#claims">Claims and verdicts</a></li>']
    toc += [f'<li><a href="#study-{_e(s.study)}">{_e(s.title)}</a></li>' for s in sections]
    toc.append('<li><a href="#provenance">Provenance</a></li>')
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>{_e(title)}</h1>",
        '<p class="sub">Reproduction of K. Nar and S. S. Sastry (2018), arXiv:1803.08203. Every verdict is '
        "computed from this run's tables with the thresholds of the config's <code>report.claims</code> "
        f"block. Built {made}.</p>",
        f"<nav><b>Contents</b><ol>{''.join(toc)}</ol></nav>",
        f'<section id="claims"><h2>Claims and verdicts</h2>{_claims_table(claims)}</section>',
        *(_section(s) for s in sections),
        '<section id="provenance"><h2>Provenance</h2>',
        _dl(provenance),
        "<h3>Wall time per job (Snakemake benchmark files)</h3>",
        _benchmarks(benchmarks),
        "</section>",
        "<footer>Self-contained page: figures are embedded, nothing is loaded from the network.</footer>",
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def provenance(repo: str | Path, digest: str) -> dict[str, str]:
    """Git state, package versions, device and the config's digest, as label -> text."""
    items = {"git commit": git_state(repo)}
    items.update({f"version {k}": v for k, v in package_versions().items()})
    items.update(device_info())
    items["config sha256"] = digest
    return items
