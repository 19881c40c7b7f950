"""The registry (pipeline/studies.py) and what is derived from it: every study is complete and
listed everywhere, the shard contract, the environment, and the code digests that make results
follow the code."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from pipeline import code, studies
from pipeline.config import load_config, runtime_keys
from pipeline.shard import Shard
from tests.helpers import REPO

MODULES = ("model", "study", "summary", "figures", "claims", "checks")
STUDIES = [s.name for s in studies.STUDIES]


@pytest.mark.parametrize("name", STUDIES)
def test_a_registered_study_has_every_part_of_the_contract(name):
    study = studies.get(name)
    for module in MODULES:
        assert (REPO / "pipeline" / name / f"{module}.py").is_file(), f"pipeline/{name}/{module}.py"
    rules = (REPO / "workflow" / "rules" / f"{name}.smk").read_text()
    for kind in study.kinds:
        assert f"rule {kind.rule}:" in rules
    for rule in ("aggregate", "figure"):
        assert f"rule {name}_{rule}:" in rules
    config, schema = load_config(), yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert name in config and name in schema["properties"]
    assert "threads" in config[name] and f"{name}.threads" in runtime_keys(config)


@pytest.mark.parametrize("name", STUDIES)
def test_figures_registered_in_the_library_have_a_registry_entry_and_a_caption_and_back(name):
    from importlib import import_module

    study = studies.get(name)
    drawn = set(import_module(study.module("figures")).FIGURES)
    assert drawn == set(study.figures), "figures.py and the registry disagree"
    captions = {p.stem.removeprefix(f"{name}_") for p in (REPO / "workflow" / "report").glob(f"{name}_*.rst")}
    assert captions == drawn, "a figure without a caption, or a caption without a figure"


@pytest.mark.parametrize("name", STUDIES)
def test_the_claims_module_holds_the_registered_claims_reading_registered_tables(name):
    from importlib import import_module

    study = studies.get(name)
    claims = import_module(study.module("claims")).CLAIMS
    assert tuple(c.claim_id for c in claims) == study.claims
    keys = {f"{name}/{k}" for k in study.claim_tables}
    for claim in claims:
        assert set(claim.tables) <= keys, (claim.claim_id, claim.tables)


def test_every_registered_study_is_in_every_derived_list():
    """The docs written by hand name every study; every list is derived from the registry."""
    texts = {p: (REPO / p).read_text() for p in ("README.md", "docs/tables.md", "docs/science.md")}
    for name in STUDIES:
        for where, text in texts.items():
            assert name in text, f"{where} does not name the study {name}"
    readme = texts["README.md"]
    cluster = readme[readme.index("## Running on a Slurm cluster") :]
    for study in studies.STUDIES:
        for kind in study.kinds:
            assert f"`{kind.rule}`" in cluster, f"the README's cluster section misses {kind.rule}"
    folders = studies.results_folders()
    assert all(f"results/{name}" in folders for name in STUDIES)
    assert "pipeline.studies results-folders" in (REPO / "Makefile").read_text()
    # the report's section titles and every claim come from the registry
    from pipeline.claims import all_claims
    from pipeline.report import build_sections

    assert [s.study for s in build_sections({}, dict.fromkeys(STUDIES, True), [])] == STUDIES
    assert sorted(c.claim_id for c in all_claims()) == sorted(i for s in studies.STUDIES for i in s.claims)


def test_no_study_imports_another_study():
    for name in STUDIES:
        for path in (REPO / "pipeline" / name).glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                mods = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                mods += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for mod in mods:
                    parts = mod.split(".")
                    if len(parts) > 1 and parts[0] == "pipeline" and parts[1] in STUDIES:
                        assert parts[1] == name, f"{path.relative_to(REPO)} imports {mod}"


def test_figure_and_report_jobs_do_not_import_torch():
    modules = [studies.get(n).module(m) for n in STUDIES for m in ("figures", "claims", "summary")]
    modules += ["pipeline.claims_figures", "pipeline.report", "pipeline.plotting", "pipeline.studies"]
    program = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_environment_file_carries_the_runtime_dependencies_and_every_import_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "workflow" / "envs" / "pipeline.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(project["dependencies"])
    assert project["license"] == "MIT" and (REPO / "LICENSE").read_text().startswith("MIT License")
    declared = {re.split(r"[\[=<>]", d)[0].lower().replace("-", "_") for d in project["dependencies"]}
    names = {"yaml": "pyyaml", "sklearn": "scikit_learn"}
    stdlib = set(sys.stdlib_module_names)
    for path in [*(REPO / "pipeline").rglob("*.py"), *(REPO / "workflow" / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            mods += (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            )
            for mod in mods:
                top = mod.split(".")[0]
                if top in stdlib or top in ("pipeline", "snakemake"):
                    continue
                assert names.get(top, top).lower() in declared, f"{path.relative_to(REPO)} imports {top}"


def test_shard_finish_removes_the_scratch_folder_only(tmp_path):
    folder = tmp_path / "shards" / "L4"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.pt").write_bytes(b"state")
    (folder / "runs.parquet").write_bytes(b"table")
    shard = Shard({"depth": 4}, scratch=folder / "checkpoints")
    assert shard["depth"] == 4
    shard.finish()
    assert not (folder / "checkpoints").exists() and (folder / "runs.parquet").is_file()
    Shard({"depth": 4}, scratch=tmp_path / "never-made").finish()  # nothing to remove: no error


def test_registry_paths_match_the_table_contract():
    config = load_config()
    stability, mnist, stepsize = studies.get("stability"), studies.get("mnist"), studies.get("stepsize")
    assert stability.table_paths(config, "scalar/runs") == ["results/stability/scalar/runs.parquet"]
    assert mnist.table_paths(config, "metrics") == [
        "results/mnist/pair/metrics.parquet",
        "results/mnist/plain_mlp/metrics.parquet",
    ]
    (kind,) = stability.kinds
    assert (
        stability.shard_outputs(kind)["runs"] == "results/stability/{experiment}/shards/L{depth}/runs.parquet"
    )
    shard, basin = stepsize.kinds
    assert set(shard.tables) == {"runs", "curves"} and basin.tables == ("basins",)
    off = {
        **config,
        "stepsize": {**config["stepsize"], "basin": {**config["stepsize"]["basin"], "enabled": False}},
    }
    assert "basins" not in stepsize.figures_run(off) and "success" in stepsize.figures_run(off)


# ------------------------------------------------------------------ code digests ------------


def _package(tmp_path: Path, monkeypatch, files: dict[str, str]) -> None:
    """A throwaway `pipeline` package under tmp_path that pipeline.code reads instead."""
    for name, text in files.items():
        path = tmp_path / "pipeline" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setattr(code, "REPO", tmp_path)
    code._parse.cache_clear()


def test_digest_follows_imports_and_ignores_comments_docstrings_and_layout(tmp_path, monkeypatch):
    files = {
        "__init__.py": '"""Package."""\n',
        "a.py": '"""A."""\nfrom pipeline import b\n\n\ndef f():\n    return b.g() + 1  # one\n',
        "b.py": "def g():\n    return 2\n",
        "c.py": "def h():\n    return 3\n",
        "sub/__init__.py": "",
        "sub/d.py": "from pipeline.sub.e import k\n",
        "sub/e.py": "k = 1\n",
    }
    _package(tmp_path, monkeypatch, files)
    assert [p.name for p in code.closure(["pipeline.a"])] == ["__init__.py", "a.py", "b.py"]
    assert {p.name for p in code.closure(["pipeline.sub.d"])} == {"__init__.py", "d.py", "e.py"}
    before = code.digest(["pipeline.a"])
    _package(
        tmp_path,
        monkeypatch,
        {"a.py": '"""Other words."""\nfrom pipeline import b\n\ndef f():\n    return b.g()+1\n'},
    )
    assert code.digest(["pipeline.a"]) == before  # docstring, comment and layout only
    _package(tmp_path, monkeypatch, {"c.py": "def h():\n    return 4\n"})
    assert code.digest(["pipeline.a"]) == before  # a module it does not import
    _package(tmp_path, monkeypatch, {"b.py": "def g():\n    return 5\n"})
    assert code.digest(["pipeline.a"]) != before  # a module it imports
    with pytest.raises(ModuleNotFoundError):
        code.digest(["pipeline.missing"])
