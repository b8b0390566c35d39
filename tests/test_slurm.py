"""The demo through a real (one-node) SLURM cluster with profiles/slurm: every job a SLURM job -- a tile's whole
chain one job (rule ``tile``) --, the same dataset as a local run, a cancelled tile job reported with its
tile's outputs, a rerun that completes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # a SLURM cluster and two demo runs: minutes


def _script(cluster: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLURM_LOCAL_DIR": str(cluster), "SLURM_LOCAL_PORT": "16917"}
    return subprocess.run(["bash", str(ROOT / "scripts" / "slurm-local.sh"), *args], capture_output=True, text=True,
                          env=env)


@pytest.fixture
def cluster(tmp_path_factory):
    """scripts/slurm-local.sh up ... down; the daemons it started must be gone afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("no SLURM and no apt-get to install it")
    if os.path.exists("/etc/slurm/slurm.conf") and not os.path.islink("/etc/slurm/slurm.conf"):
        pytest.skip("this machine has a SLURM configuration of its own")
    where = Path("/tmp") / f"gos-build-slurm-test-{os.getpid()}"  # short: munge's socket path is limited
    res = _script(where, "up")
    if res.returncode != 0:
        _script(where, "down")
        pytest.fail(f"slurm-local.sh up failed: {res.stderr[-2000:]}")
    pids = {d: int((where / f"{d}.pid").read_text()) for d in ("munged", "slurmctld", "slurmd")}
    try:
        yield where
    finally:
        res = _script(where, "down")
        assert "stopped 3 daemon(s)" in res.stderr, res.stderr
        for name, pid in pids.items():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # the cluster is down: none of its daemons is left
        assert not os.path.exists("/etc/slurm/slurm.conf") or not os.path.islink("/etc/slurm/slurm.conf")
        shutil.rmtree(where, ignore_errors=True)


def _env(cluster: Path) -> dict:
    return {**os.environ, "SLURM_CONF": str(cluster / "slurm.conf"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def _snakemake(work: Path, env: dict, *args: str, **kw):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kw)


SLURM_ARGS = ("--profile", str(ROOT / "profiles" / "slurm"), "--slurm-no-account", "--slurm-status-command", "squeue",
              "--slurm-init-seconds-before-status-checks", "2", "--retries", "0")
SUBMITTED = re.compile(r"Job \S+ has been submitted with SLURM jobid (\d+) \(log: .*/slurm_logs/(rule|group)_(\w+?)/"
                       r"(?:(\S+)/)?\d+\.log\)")


def _cluster_jobs(cluster: Path) -> tuple[set[int], set[int]]:
    """(job ids submitted, job ids completed with exit status 0) as slurmctld logged them."""
    log = (cluster / "log" / "slurmctld.log").read_text()
    submitted = {int(j) for j in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", log)}
    done = {int(j) for j in re.findall(r"_job_complete: JobId=(\d+) WEXITSTATUS 0", log)}
    return submitted, done


def test_demo_on_a_local_slurm_cluster(cluster, tmp_path):
    env = _env(cluster)
    # the local reference: the same config, --cores 2
    local = tmp_path / "local"
    local.mkdir()
    ref = _snakemake(local, env, "--cores", "2")
    out, _ = ref.communicate(timeout=900)
    assert ref.returncode == 0, out[-3000:]
    # every job the DAG has, but the local `all`
    dry = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                          str(tmp_path / "dry"), "-n", "--quiet", "rules"], capture_output=True, text=True, env=env)
    planned = {}
    for line in dry.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("job", "total", "all"):
            planned[parts[0]] = int(parts[1])

    work = tmp_path / "slurm"
    work.mkdir()
    # first run: cancel one tile job (a tile's Sentinel-2, terrain, labels and chips) as soon as it runs;
    # Snakemake must name the rule, its SLURM log and the tile's outputs
    run = _snakemake(work, env, *SLURM_ARGS)
    cancelled, deadline = None, time.time() + 600
    while cancelled is None and time.time() < deadline and run.poll() is None:
        q = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True, text=True, env=env)
        for line in q.stdout.splitlines():
            jobid, _, comment = line.partition(" ")
            if comment.startswith("rule_tile"):
                subprocess.run(["scancel", jobid], env=env, check=True)
                cancelled = (int(jobid), comment)
                break
        time.sleep(0.5)
    out1, _ = run.communicate(timeout=900)
    assert cancelled is not None, "no tile job was seen running"
    assert run.returncode != 0
    # the error names the rule, the tile's outputs and the job's SLURM log
    error_block = out1[out1.index("Error in rule tile"):]
    assert re.search(r"output: results/demo/tiles/[EW]\d{7,8}[NS]\d{7,8}/shard", error_block), error_block[:3000]
    logs = [p for p in (work / ".snakemake" / "slurm_logs" / "rule_tile").rglob(f"{cancelled[0]}.log")]
    assert len(logs) == 1 and "CANCELLED" in logs[0].read_text()

    # the same command again completes
    run = _snakemake(work, env, *SLURM_ARGS)
    out2, _ = run.communicate(timeout=1200)
    assert run.returncode == 0, out2[-3000:]

    # every planned job ran as a SLURM job of its own, no group: a tile's whole chain is one submission
    jobs = [m for m in SUBMITTED.finditer(out1 + out2)]
    assert {m.group(2) for m in jobs} == {"rule"}
    ran = {}
    for m in jobs:
        ran.setdefault(m.group(3), set()).add(m.group(4) or "")
    tiles = [int(m.group(1)) for m in SUBMITTED.finditer(out2) if m.group(3) == "tile"]
    assert 1 <= len(tiles) <= planned["tile"]  # the completing run: the cancelled tile and those not done before
    for jobid in tiles:  # one CPU a tile (profiles/slurm: cpus_per_task 1)
        show = subprocess.run(["scontrol", "show", "job", str(jobid)], capture_output=True, text=True, env=env).stdout
        assert re.search(r"NumCPUs=1 ", show), show
    bench = work / "benchmarks" / "runs" / "demo"  # every tile job wrote its benchmark file
    assert len(list((bench / "tile").glob("*.tsv"))) == planned["tile"]
    # ... and one s2_granule job a granule: the DAG learns of those from the inputs_sentinel2 checkpoint
    from gos_build.grid import Grid
    from gos_build.inputs import read_manifest
    from gos_build.sentinel2 import granule_keys

    results = work / "results" / "demo"
    keys = granule_keys(read_manifest(results / "inputs" / "sentinel2.json", "sentinel2"),
                        Grid.read(results / "grid.json"))
    assert ran.pop("s2_granule") == set(keys) and keys, ran  # their log folders are named by the wildcard
    assert {r: len(w) for r, w in ran.items()} == planned, (ran, planned)
    submitted, done = _cluster_jobs(cluster)  # what slurmctld itself logged
    ids = {int(m.group(1)) for m in jobs}
    assert ids <= submitted and cancelled[0] in ids
    assert {int(m.group(1)) for m in SUBMITTED.finditer(out2)} <= done  # the completing run: every job exit 0
    print(f"SLURM job ids: {sorted(ids)}; cancelled {cancelled}")
    # the same dataset as the local run
    assert ((work / "results" / "demo" / "dataset" / "MANIFEST.sha256").read_bytes()
            == (local / "results" / "demo" / "dataset" / "MANIFEST.sha256").read_bytes())
