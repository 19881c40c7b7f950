"""Bad input a user can give fails fast, before any job, with a message naming the cause."""

import pytest
import yaml

from tests.conftest import copy_repo, snakemake


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("cfg") / "wf")


def dry_run(work, overrides: dict, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(overrides))
    return snakemake(work, "-n", "--configfile", str(cfg), check=False, timeout=300)


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
