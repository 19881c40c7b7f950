"""The Slurm profile against a real Slurm: a one-node cluster on 127.0.0.1.

cluster/start-local-slurm.sh brings the cluster up (installing Debian's Slurm, munge
and MariaDB with apt-get when missing). Two workflow runs go through the profile
(profiles/slurm) at the same time, while the local smoke run (conftest.smoke_run)
computes the reference:
  * the smoke configuration: every job Snakemake submitted must be in Slurm's accounting
    (sacct) as COMPLETED, and the outputs must equal those of the local run;
  * the data stage made to fail (a wrong checksum): Snakemake must name the job's Slurm log,
    and --retries 1 must submit it a second time.
Afterwards the cluster is stopped and checked to be stopped. Needs root and apt-get (or the
packages already installed); skipped otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline import studies
from tests.helpers import REPO, copy_repo, make_fake_mnist

pytestmark = pytest.mark.slurm

START = REPO / "cluster" / "start-local-slurm.sh"
STOP = REPO / "cluster" / "stop-local-slurm.sh"
PROFILE = "profiles/slurm"
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")
SLURM_BINARIES = ("slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "munged", "mariadbd")
# Test-only plugin settings: the first status check 3 s after submission instead of 40 s
# (the plugin then adds 10 s per check while no job finishes), so that jobs of a few
# seconds are seen finished within seconds: the runs take minutes, not ten.
FAST_STATUS = (
    "--slurm-init-seconds-before-status-checks", "3",
    "--seconds-between-status-checks", "3",
)  # fmt: skip
RUN_TIMEOUT_S = 1200
# Compared with the local run: every file under results/ but these (per-run by nature).
VOLATILE = (
    "results/logs/",  # job logs: timings, paths
    "results/benchmarks/",  # wall times
    "results/report/index.html",  # provenance section: host, wall times, run date
    "results/report/claims.md",  # claims.csv (compared above) as text, with the run's wall times
)
# Figures are compared by name only; the numbers they show are compared through the tables.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
# Table columns that hold measured durations or speeds rather than results.
TIMING_COLUMN = re.compile(r"seconds|per_s\b|_time\b|_cost_")
# Claim rows (claims.csv, robustness.parquet) flagged `timing_dependent` are compared by
# these columns only: their numbers and verdicts come from measured wall time.
CLAIM_IDENTITY = re.compile(r"claim_id|part|claim|statistic|threshold|setting(_\w+)?")


def _installed() -> bool:
    return all(shutil.which(b) or Path("/usr/sbin", b).exists() for b in SLURM_BINARIES)


def _pid_running(pid: int) -> bool:
    """True if `pid` is a live process (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Cluster:
    def __init__(self, state: Path):
        self.state = state
        self.env = {
            **os.environ,
            "SLURM_CONF": str(state / "etc" / "slurm.conf"),
            "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin",
        }

    def run(self, *cmd: str) -> str:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout

    def pids(self) -> dict[str, int]:
        return {d: int((self.state / "pids" / f"{d}.pid").read_text()) for d in DAEMONS}

    def sacct(self, run_uuid: str) -> dict[str, dict[str, str]]:
        """{Slurm job id: {State, Comment, AllocTRES, ExitCode}} of one Snakemake run's jobs."""
        fields = ("JobIDRaw", "State", "Comment", "AllocTRES", "ExitCode")
        out = self.run(
            "sacct", "-X", "-n", "-P", "--starttime", "now-1days",
            "--name", run_uuid, "-o", ",".join(fields),
        )  # fmt: skip
        rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]
        return {r["JobIDRaw"]: r for r in rows}


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node Slurm; stopped (and checked to be stopped) after the module."""
    if os.geteuid() != 0:
        pytest.skip("starting a local Slurm cluster needs root")
    if not _installed() and shutil.which("apt-get") is None:
        pytest.skip("Slurm is not installed and there is no apt-get to install it")
    state = tmp_path_factory.mktemp("slurm")
    t0 = time.monotonic()
    proc = subprocess.run([str(START), str(state)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        subprocess.run([str(STOP), str(state)], capture_output=True, timeout=300)
        raise AssertionError(f"start-local-slurm.sh failed:\n{proc.stdout}\n{proc.stderr}")
    print(f"\nlocal Slurm up in {time.monotonic() - t0:.1f} s\n{proc.stderr}", file=sys.stderr)
    cluster = Cluster(state)
    pids = cluster.pids()
    try:
        yield cluster
    finally:
        stop = subprocess.run([str(STOP), str(state)], capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0, f"stop-local-slurm.sh failed:\n{stop.stderr}"
        still = {d: p for d, p in pids.items() if _pid_running(p)}
        assert not still, f"daemons still running after stop-local-slurm.sh: {still}"
        assert not list((state / "pids").glob("*.pid"))
        link = Path("/run/slurm/conf")
        assert not (link.is_symlink() and os.readlink(link) == str(state / "etc"))
        ping = subprocess.run(
            ["scontrol", "ping"], env=cluster.env, capture_output=True, text=True, timeout=60
        )
        assert "UP" not in ping.stdout, ping.stdout
        # The database is of no use once stopped; the logs stay for a post-mortem.
        shutil.rmtree(state / "mysql", ignore_errors=True)


@dataclass
class Run:
    """One snakemake run through the Slurm profile, started in the background."""

    work: Path
    proc: subprocess.Popen
    log: Path
    t0: float
    seconds: float = 0.0
    output: str = ""

    @classmethod
    def start(cls, work: Path, cluster: Cluster, *args: str) -> Run:
        exe = Path(sys.executable).with_name("snakemake")
        log = work.parent / f"{work.name}.snakemake.out"
        with log.open("w") as fh:
            proc = subprocess.Popen(
                [str(exe), "--workflow-profile", PROFILE, *FAST_STATUS, *args],
                cwd=work,
                env=cluster.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                text=True,
            )
        return cls(work, proc, log, time.time())

    def poll(self) -> bool:
        """True once the run has ended (then `seconds` and `output` are set)."""
        if self.proc.poll() is None:
            return False
        if not self.output:
            # The run ended when it last wrote its output (it may be polled much later).
            self.seconds = self.log.stat().st_mtime - self.t0
            self.output = self.log.read_text()
        return True

    def interrupt(self):
        """Ctrl-C: snakemake cancels its Slurm jobs and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def slurm_runs(slurm_cluster, tmp_path_factory, request):
    """Both Slurm runs, run concurrently with the local smoke run they are compared to."""
    root = tmp_path_factory.mktemp("slurm-runs")
    # The smoke run's inputs, as conftest.smoke_run makes them (same files, same checksums).
    md5 = make_fake_mnist(root / "mnist", n_train=600, n_test=200)
    # mnist.gpu = 1: the MNIST jobs ask Slurm for a GPU (a runtime key: the local run's tables match)
    (root / "override.yaml").write_text(
        yaml.safe_dump(
            {"mnist_dir": str(root / "mnist"), "data": {"md5": md5, "mirrors": []}, "mnist": {"gpu": 1}}
        )
    )
    # The failing variant: a checksum no file has, no mirrors; only the data stage is asked for.
    bad = dict(md5, **{"train-images-idx3-ubyte": hashlib.md5(b"not these images").hexdigest()})
    (root / "corrupt.yaml").write_text(
        yaml.safe_dump({"mnist_dir": str(root / "mnist"), "data": {"md5": bad, "mirrors": []}})
    )
    runs = {
        "smoke": Run.start(
            copy_repo(root / "smoke"), slurm_cluster,
            "--configfile", "config/smoke.yaml", str(root / "override.yaml"),
        ),
        "failing": Run.start(
            copy_repo(root / "failing"), slurm_cluster,
            "mnist_data", "--configfile", str(root / "corrupt.yaml"), "--retries", "1",
        ),
    }  # fmt: skip
    try:
        local_work, _ = request.getfixturevalue("smoke_run")
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not all(run.poll() for run in runs.values()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the Slurm runs took over {RUN_TIMEOUT_S} s")
            time.sleep(1)
        for name, run in runs.items():
            print(f"{name} run through Slurm: {run.seconds:.0f} s", file=sys.stderr)
    finally:
        for run in runs.values():
            run.interrupt()
    return runs, local_work


def jobs_in_log(output: str) -> tuple[dict[int, str], dict[int, str]]:
    """({snakemake jobid: rule} of cluster jobs, the same of local jobs) from snakemake's log."""
    cluster, local = {}, {}
    block = re.compile(r"^(local)?rule (\w+):\n(?:[ \t]+.*\n)*?[ \t]+jobid: (\d+)$", re.M)
    for m in block.finditer(output):
        (local if m[1] else cluster)[int(m[3])] = m[2]
    return cluster, local


def submissions(output: str) -> list[tuple[int, str, str]]:
    """(snakemake jobid, Slurm job id, Slurm log) of every sbatch submission, in order."""
    pattern = r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.$"
    return [(int(j), s, log) for j, s, log in re.findall(pattern, output, re.M)]


def run_uuid(output: str) -> str:
    """The run's id, which the executor gives every job as its Slurm job name."""
    m = re.search(r"SLURM run ID: (\S+)", output)
    assert m, "no 'SLURM run ID' in snakemake's output:\n" + output[-3000:]
    return m[1]


def gpu_rules() -> set[str]:
    """The shard rules that ask for GPUs (<study>.gpu in the config; the registry says which)."""
    return {k.rule for s in studies.STUDIES if s.gpu for k in s.kinds}


def read_table(path: Path) -> pd.DataFrame:
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if "timing_dependent" in table:
        timed = table["timing_dependent"].astype(bool)
        volatile = [c for c in table.columns if not CLAIM_IDENTITY.fullmatch(str(c))]
        table[volatile] = table[volatile].astype(object).where(~timed, None)
    return table.drop(columns=[c for c in table.columns if TIMING_COLUMN.search(str(c))])


def assert_same_results(work: Path, reference: Path):
    def files(root):
        return {
            p.relative_to(root).as_posix(): p
            for p in (root / "results").rglob("*")
            if p.is_file() and not p.relative_to(root).as_posix().startswith(VOLATILE)
        }

    here, there = files(work), files(reference)
    assert sorted(here) == sorted(there), "the Slurm run and the local run wrote different files"
    differ = []
    for name, path in here.items():
        if path.suffix in FIGURE_SUFFIXES:
            assert path.stat().st_size > 0, name
        elif path.suffix in (".parquet", ".csv"):
            try:
                pd.testing.assert_frame_equal(read_table(path), read_table(there[name]))
            except AssertionError as err:
                differ.append(f"{name}: {str(err).splitlines()[0]}")
        elif path.read_bytes() != there[name].read_bytes():
            differ.append(name)
    assert not differ, f"outputs differ from the local run: {differ}"


def test_smoke_configuration_runs_through_slurm(slurm_cluster, slurm_runs):
    runs, local_work = slurm_runs
    run = runs["smoke"]
    assert run.proc.returncode == 0, run.output[-6000:]

    # Every job Snakemake ran outside `localrules:` was submitted exactly once ...
    cluster_jobs, local_jobs = jobs_in_log(run.output)
    subs = submissions(run.output)
    assert cluster_jobs, "no job went to the cluster:\n" + run.output[-3000:]
    assert sorted(j for j, _, _ in subs) == sorted(cluster_jobs)
    assert not set(local_jobs) & {j for j, _, _ in subs}
    # ... and Slurm ran each of them to completion.
    accounted = slurm_cluster.sacct(run_uuid(run.output))
    assert sorted(accounted) == sorted(s for _, s, _ in subs), accounted
    gpu = gpu_rules()
    assert gpu and gpu <= set(cluster_jobs.values())
    for jobid, slurm_id, _ in subs:
        row = accounted[slurm_id]
        assert row["State"] == "COMPLETED", row
        assert row["Comment"].startswith(f"rule_{cluster_jobs[jobid]}"), row
        # The GPU request (mnist.gpu) reached Slurm (the local node has stand-in GPUs).
        if cluster_jobs[jobid] in gpu:
            assert "gres/gpu=1" in row["AllocTRES"], row

    assert_same_results(run.work, local_work)


def test_failed_job_names_its_slurm_log_and_is_resubmitted(slurm_cluster, slurm_runs):
    runs, _ = slurm_runs
    run = runs["failing"]
    assert run.proc.returncode != 0, run.output[-4000:]

    subs = submissions(run.output)
    assert len(subs) == 2, subs  # the first attempt and one retry
    accounted = slurm_cluster.sacct(run_uuid(run.output))
    assert sorted(accounted) == sorted(s for _, s, _ in subs), accounted
    for _, slurm_id, log in subs:
        assert accounted[slurm_id]["State"] == "FAILED", accounted[slurm_id]
        assert accounted[slurm_id]["Comment"].startswith("rule_mnist_data")
        # Snakemake's error report names the Slurm log of the failed job ...
        report = re.search(
            rf"^Error in rule mnist_data:\n[ \t]+message: SLURM-job '{slurm_id}' failed.*\n"
            r"(?:[ \t]+.*\n)*",
            run.output,
            re.M,
        )
        assert report, f"no error report for Slurm job {slurm_id}:\n{run.output[-4000:]}"
        assert re.search(rf"^[ \t]+log: .*{re.escape(log)}", report[0], re.M), report[0]
        # ... and the log says why it failed.
        assert Path(log).is_file(), log
        assert "Could not get a verified copy of train-images-idx3-ubyte" in Path(log).read_text()
    raw = run.work / "results" / "data" / "MNIST" / "raw"
    assert not (raw / "train-images-idx3-ubyte").exists()
