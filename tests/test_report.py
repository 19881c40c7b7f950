"""The report page: pieces (captions, provenance, benchmarks, self-containment) and the workflow."""

import base64
import re
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from pipeline.claims import COLUMNS  # noqa: E402
from pipeline.report import (  # noqa: E402
    build_sections,
    config_digest,
    git_state,
    provenance,
    read_benchmarks,
    render_html,
    rst_to_html,
    run_times,
)
from tests.helpers import REPO  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_png(path, color="C0"):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, 1], color=color)
    fig.savefig(path, dpi=50)
    plt.close(fig)
    return path


def claims_frame():
    """Three claims: a supported one with two parts, a fragile one with one part, a not-run one."""
    part = dict(
        statistic="share <x>",
        estimate=0.8,
        ci_low=0.7,
        ci_high=0.9,
        threshold=0.5,
        side=">",
        flip_threshold=0.7,
    )
    rows = [
        dict(claim_id=1, part="a", verdict="supported", settings_supported=3, settings_total=4, **part),
        dict(
            claim_id=1,
            part="b",
            verdict="not supported",
            settings_supported=0,
            settings_total=4,
            timing_dependent=True,
            **part,
        ),
        dict(claim_id=1, part="all", verdict="not supported", settings_supported=0, settings_total=4),
        dict(claim_id=2, part="a", verdict="supported", settings_supported=1, settings_total=4, **part),
        dict(
            claim_id=2, part="all", verdict="supported", settings_supported=1, settings_total=4, fragile=True
        ),
        dict(claim_id=3, part="all", verdict="not run", settings_supported=0, settings_total=0),
    ]
    df = pd.DataFrame(rows).assign(claim=lambda d: "claim text " + d["claim_id"].astype(str))
    df["evidence"] = [f"numbers <{i}> & more" for i in range(len(df))]
    df["fragile"] = df["fragile"].fillna(False).astype(bool)
    df["timing_dependent"] = df["timing_dependent"].fillna(False).astype(bool)
    return df[COLUMNS]


def test_rst_captions_render_with_docutils_and_report_their_problems():
    text = (
        "Median of the **final loss** over *seeds*,\nfor ``identity`` init and :math:`\\delta = 0.1`.\n\n"
        "See `the paper <https://arxiv.org/abs/1803.08203>`_.\n"
    )
    html, messages = rst_to_html(text)
    assert messages == []
    assert "<strong>final loss</strong>" in html and "<em>seeds</em>" in html
    assert '<a class="reference external" href="https://arxiv.org/abs/1803.08203">the paper</a>' in html
    # the check can fail: |x| is substitution syntax in reStructuredText
    _, messages = rst_to_html("the drift |final - init| per layer\n")
    assert any("Undefined substitution" in m for m in messages)


def test_every_caption_renders_without_a_docutils_message():
    captions = sorted((REPO / "workflow" / "report").glob("*.rst"))
    assert len(captions) > 10
    for path in captions:
        if path.name == "figure.rst":  # the Jinja template of the figure rules' captions
            continue
        assert rst_to_html(path.read_text())[1] == [], path.name


def test_config_digest_is_canonical():
    a = {"b": [1, 2], "a": {"y": 1.5, "x": None}}
    b = {"a": {"x": None, "y": 1.5}, "b": [1, 2]}
    assert config_digest(a) == config_digest(b)
    assert re.fullmatch(r"[0-9a-f]{64}", config_digest(a))
    assert config_digest(a) != config_digest({**a, "b": [2, 1]})


def test_git_state(tmp_path):
    assert git_state(tmp_path) == "unknown (the workflow folder is not a git repository)"

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    assert git_state(tmp_path) == "unknown (no commit yet)"
    (tmp_path / "f.txt").write_text("1")
    git("add", "f.txt")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    clean = git_state(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40} \(clean\)", clean)
    (tmp_path / "f.txt").write_text("2")
    assert git_state(tmp_path) == clean.replace("clean", "dirty: uncommitted changes")


def test_read_benchmarks(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "stability" / "scalar").mkdir(parents=True)
    (tmp_path / "stability" / "scalar" / "shard_0.tsv").write_text(
        header + "2.5\t0:00:02\t300.1\t1\t1\t1\t0\t0\t90\t2.2\n"
    )
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "claims.tsv").write_text(header + "1.0\t0:00:01\t80\t1\t1\t1\t0\t0\t50\t0.5\n")
    (tmp_path / "report" / "empty.tsv").write_text("")
    (tmp_path / "top.tsv").write_text(header + "1\t-\t-\t-\t-\t-\t-\t-\t-\t-\n3\t-\t-\t-\t-\t-\t-\t-\t-\t-\n")
    (tmp_path / "stale.tsv").write_text(header + "9\t-\t-\t-\t-\t-\t-\t-\t-\t-\n")  # not a job of this run
    jobs = ["stability/scalar/shard_0.tsv", "report/claims.tsv", "report/empty.tsv", "top.tsv", "missing.tsv"]
    bench = read_benchmarks([tmp_path / j for j in jobs], tmp_path)
    assert bench["job"].tolist() == ["report/claims", "stability/scalar/shard_0", "top"]
    assert bench["study"].tolist() == ["report", "stability", ""]
    assert bench["s"].tolist() == [1.0, 2.5, 2.0]
    assert bench.loc[1, "max_rss"] == pytest.approx(300.1) and pd.isna(bench.loc[2, "cpu_time"])
    assert read_benchmarks([]).empty
    times = run_times(bench)
    assert times["jobs_seconds"] == pytest.approx(5.5)
    # ends are the files' modification times; the elapsed time spans the first start to the last end
    assert times["elapsed_seconds"] == pytest.approx(bench["end"].max() - (bench["end"] - bench["s"]).min())


def test_page_is_self_contained_with_every_section(tmp_path):
    figs = tmp_path / "figs"
    figs.mkdir()
    captions = tmp_path / "captions"
    captions.mkdir()
    pngs = {
        "stability": [small_png(figs / "loss.png"), small_png(figs / "sharpness.png", "C1")],
        "bias1d": [],
    }
    (captions / "stability_loss.rst").write_text("Loss <vs> depth.\n\nSecond paragraph.\n")
    enabled = {"stability": True, "bias1d": True, "mnist": False}
    sections = build_sections(pngs, enabled, [captions / "stability_loss.rst"])
    assert [s.study for s in sections] == ["stability", "bias1d", "mnist"]
    bench = pd.DataFrame(
        [
            ("stability/a", "stability", 2.0, 100.0, 1.0, 10.0),
            ("report/claims", "report", 0.5, 50.0, 0.4, 11.0),
        ],
        columns=["job", "study", "s", "max_rss", "cpu_time", "end"],
    )
    prov = provenance(tmp_path, ["config.yaml", "config/smoke.yaml"], config_digest({"a": 1}), ["cuda:0"])
    assert prov["git commit"].startswith("unknown") and prov["config sha256"] == config_digest({"a": 1})
    assert prov["config files"] == "config.yaml, config/smoke.yaml" and prov["training devices"] == "cuda:0"
    assert prov["version pandas"] == pd.__version__ and "CUDA" in prov
    page = render_html(claims_frame(), sections, prov, bench)

    # nothing is fetched: no src/href to another file or host, no @import/url() in the CSS
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", page)
    assert "url(" not in page and "@import" not in page and "<link" not in page
    # every figure is embedded and decodes to the PNG that was written
    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 2
    assert base64.b64decode(uris[0]) == (figs / "loss.png").read_bytes()
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    # claims first, escaped, with a badge per verdict; then the studies, then provenance
    assert (
        page.index('id="claims-table"') < page.index('id="study-stability"') < page.index('id="provenance"')
    )
    assert page.count('<tr class="claim">') == 3 and page.count('<tr class="part">') == 3
    assert page.count('class="badge supported"') == 3 + 1  # rows + summary line
    assert page.count('class="badge not-supported"') == 2 + 1
    assert page.count('class="badge fragile"') == 1
    assert page.count("measured wall time: may change between reruns") == 1  # claim 1 b
    assert "0.8 [0.7, 0.9]" in page and "1 of 4" in page
    assert "numbers &lt;1&gt; &amp; more" in page and "share &lt;x&gt;" in page
    assert "<p>Loss &lt;vs&gt; depth.</p>\n<p>Second paragraph.</p>" in page
    assert "No figures registered for this study." in page  # bias1d: enabled, no figures
    assert "Not run: the study <code>mnist</code> is disabled in config." in page
    assert 'href="#study-mnist"' in page and "stability/a" in page and "2.0" in page
