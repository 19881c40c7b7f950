"""Shared fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

import pytest

from tests.helpers import copy_repo, fake_mnist_config, make_fake_mnist, small_config, snakemake


@pytest.fixture
def fake_mnist(tmp_path):
    folder = tmp_path / "mnist_src"
    md5 = make_fake_mnist(folder)
    return folder, md5


@pytest.fixture(scope="session")
def smoke_config():
    """The validated smoke config (config.yaml + config/smoke.yaml); tests copy what they change."""
    return small_config()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke configuration run once end to end on synthetic MNIST files.

    Returns the workflow copy's directory (its results/ holds every output) and the
    snakemake arguments that select this configuration.
    """
    root = tmp_path_factory.mktemp("smoke")
    work = copy_repo(root / "wf")
    override = fake_mnist_config(root / "mnist", root / "override.yaml")
    args = ("--configfile", "config/smoke.yaml", str(override))
    snakemake(work, "--cores", "2", *args)
    return work, args


@pytest.fixture(scope="session")
def workflow_copy(tmp_path_factory):
    """A copy of the workflow for dry runs (snakemake -n) that write nothing lasting."""
    return copy_repo(tmp_path_factory.mktemp("cfg") / "wf")


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test (small tensors gain nothing from more)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
