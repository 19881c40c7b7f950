"""Bad input a user can give fails fast, before any job, with a message naming the cause."""

from tests.conftest import dry_run, snakemake


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
