"""The config checks itself: schema defaults, rules between keys, errors before any job, params."""

import copy

import pytest
import yaml

from pipeline.config import canonical, load_config, mnist_part, mnist_parts, numbers, runtime_keys, validate
from pipeline.errors import UserError
from tests.helpers import REPO, dry_run, snakemake


def test_config_yaml_equals_the_schema_defaults():
    from_schema = validate({})
    from_file = yaml.safe_load((REPO / "config.yaml").read_text())
    assert canonical(from_file) == canonical(from_schema)


def test_default_config_dry_run_lists_the_dag(workflow_copy):
    proc = snakemake(workflow_copy, "-n", "--quiet", "rules", timeout=300)
    assert "mnist_data" in proc.stdout + proc.stderr


def test_misspelt_key_is_named(workflow_copy, tmp_path):
    proc = dry_run(workflow_copy, {"mnist_dri": "/tmp"}, tmp_path)
    assert proc.returncode != 0
    assert "Unknown config key 'mnist_dri' at the top level" in proc.stdout + proc.stderr


def test_misspelt_nested_key_is_named(workflow_copy, tmp_path):
    proc = dry_run(workflow_copy, {"data": {"timeout": 3}}, tmp_path)
    assert proc.returncode != 0
    assert "Unknown config key 'timeout' under data" in proc.stdout + proc.stderr


def test_missing_local_data_folder_fails_before_any_job(workflow_copy, tmp_path):
    missing = tmp_path / "no-such-folder"
    proc = snakemake(workflow_copy, "-n", "--config", f"mnist_dir={missing}", check=False, timeout=300)
    assert proc.returncode != 0
    assert f"The MNIST folder '{missing}' (config key mnist_dir) does not exist" in proc.stdout + proc.stderr


# Configs that break a rule between keys, and the key the error must name.
BAD_RELATIONS = [
    ({"stability": {"scalar": {"delta_min": 9.0, "delta_max": 1.0}}}, "stability.scalar.delta_min/delta_max"),
    ({"stability": {"scalar": {"delta_num": 0, "delta_factors": []}}}, "stability.scalar.delta_num"),
    ({"stability": {"depth": {"eig_low": 3.0}}}, "stability.depth.eig_low/eig_high"),
    (
        {"stability": {"single_vs_double": {"regimes": [{"name": "a", "low": 1, "high": -1}]}}},
        "stability.single_vs_double.regimes",
    ),
    ({"figures": {"stability": {"typical": {"regime": "nope"}}}}, "figures.stability.typical.regime"),
    ({"figures": {"stability": {"typical": {"depth": 5}}}}, "figures.stability.typical.depth"),
    ({"figures": {"stability": {"typical": {"delta_rel": 0.3}}}}, "figures.stability.typical.delta_rel"),
    ({"figures": {"stability": {"typical": {"seed": 50}}}}, "figures.stability.typical.seed"),
    ({"bias1d": {"data": {"low": 1.0, "high": -1.0}}}, "bias1d.data"),
    ({"bias1d": {"intervals": [{"name": "x", "low": 1.0, "high": 0.5}]}}, "bias1d.intervals (x)"),
    ({"bias1d": {"piecewise": {"knots_y": [0.0, 1.0]}}}, "bias1d.piecewise.knots_x"),
    ({"figures": {"bias1d": {"seed": 99}}}, "figures.bias1d.seed"),
    ({"figures": {"bias1d": {"depth": 7}}}, "figures.bias1d.depth"),
    ({"bias1d": {"updates": {"depths": [7]}}}, "bias1d.updates.depths"),
    ({"bias1d": {"updates": {"intervals": ["narrow25", "medium"]}}}, "bias1d.updates.intervals"),
    (
        {
            "bias1d": {"targets": ["sine"], "primary_seeds": {"targets": ["sine"]}},
            "report": {"claims": {"bias1d_target": "sine"}},
        },
        "bias1d.updates.targets",
    ),
    ({"figures": {"bias1d": {"updates_interval": "narrow25"}}}, "figures.bias1d.updates_interval"),
    ({"bias1d": {"primary_seeds": {"depths": [7]}}}, "bias1d.primary_seeds.depths"),
    ({"bias1d": {"primary_seeds": {"intervals": ["medium"]}}}, "bias1d.primary_seeds.intervals"),
    ({"bias1d": {"primary_seeds": {"seeds": 4}}}, "bias1d.primary_seeds.seeds"),
    ({"report": {"claims": {"claim9_depth": 20}}}, "report.claims.claim9_depth"),
    ({"bias1d": {"updates": {"momenta": [0.9]}}}, "report.claims.bias1d_momentum"),
    ({"mnist": {"conv": {"size": 28, "padding": 0, "pool": 4}}}, "mnist.conv"),
    ({"mnist": {"init": {"bias_low": 2.0}}}, "mnist.init.bias_low/bias_high"),
    ({"figures": {"mnist": {"drift_epoch": 31}}}, "figures.mnist.drift_epoch"),
    (
        {"figures": {"mnist": {"drift_epoch": 7}}, "mnist": {"parts": {"comparison": {"epochs": 5}}}},
        "the MNIST part comparison",
    ),
    ({"mnist": {"parts": {"paper": None, "comparison": None}}}, "mnist.parts sets every part to null"),
    ({"report": {"claims": {"mnist_part": "nope"}}}, "report.claims.mnist_part"),
    ({"mnist": {"parts": {"comparison": None}}}, "report.claims.mnist_part"),
    ({"report": {"claims": {"mnist_variant": "convex_only"}}}, "report.claims.mnist_variant"),
]


@pytest.mark.parametrize(("override", "key"), BAD_RELATIONS)
def test_rules_between_keys_name_the_key(override, key):
    with pytest.raises(UserError, match=key.replace("(", r"\(").replace(")", r"\)")):
        load_config(override)


@pytest.mark.parametrize(("override", "key"), BAD_RELATIONS[::5])
def test_a_broken_rule_between_keys_fails_the_dry_run(workflow_copy, tmp_path, override, key):
    proc = dry_run(workflow_copy, override, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and key in out and "Traceback" not in out
    assert "Job stats" not in out  # it failed before building any job


def test_mnist_part_numbers_are_the_block_with_the_parts_overrides():
    config = load_config()
    paper, comparison = mnist_part(config, "paper"), mnist_part(config, "comparison")
    assert "parts" not in paper and "enabled" not in paper and "threads" not in paper
    assert paper["epochs"] == config["mnist"]["epochs"] and paper["train_subset"] == 0
    assert comparison["epochs"] == 5 and comparison["train_subset"] == 10000
    assert {k for k in paper if paper[k] != comparison[k]} <= {"epochs", "train_subset"}
    assert list(mnist_parts(config)) == ["paper", "comparison"]
    assert mnist_parts(load_config({"mnist": {"parts": {"paper": None}}})) == {
        "comparison": config["mnist"]["parts"]["comparison"]
    }
    assert mnist_parts(load_config({"mnist": {"enabled": False}})) == {}


def test_params_slices_leave_out_runtime_keys_and_ignore_key_order():
    config = load_config()
    assert "threads" not in numbers(config, "mnist") and "gpu" not in numbers(config, "mnist")
    assert "threads" not in numbers(config, "bias1d") and "threads" not in numbers(config, "stability")
    assert {k.split(".")[0] for k in runtime_keys(config)} <= set(config)
    assert {"mnist.gpu", "mnist.threads", "edge.threads"} <= runtime_keys(config)
    shuffled = copy.deepcopy(config)
    shuffled["mnist"] = dict(reversed(list(shuffled["mnist"].items())))
    assert repr(numbers(shuffled, "mnist")) == repr(numbers(config, "mnist"))


def test_default_profile_is_in_effect(workflow_copy, tmp_path):
    """profiles/default sets cores: all; without it a dry run schedules one core per job."""
    import os

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores to see the profile's cores: all")
    two = {"mnist": {"threads": 2}}
    with_profile = dry_run(workflow_copy, two, tmp_path)
    without = dry_run(workflow_copy, two, tmp_path, "--workflow-profile", "none", "--configfile")
    assert with_profile.returncode == 0 and without.returncode == 0, without.stderr[-3000:]
    with_profile, without = with_profile.stdout, without.stdout
    block = r"rule mnist_shard:\n(?:    .*\n)*?    threads: 2\n"
    import re

    assert re.search(block, with_profile), with_profile[-3000:]
    assert not re.search(block, without)


def test_the_studies_key_runs_the_named_studies_only_and_names_must_be_registered():
    from pipeline import studies

    config = load_config({"studies": ["mnist"]})
    assert [s.name for s in studies.STUDIES if s.enabled(config)] == ["mnist"]
    assert all(s.enabled(load_config()) for s in studies.STUDIES)
    with pytest.raises(UserError, match="studies = 'nope' is not a registered study"):
        load_config({"studies": ["nope"]})
