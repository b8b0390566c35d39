"""What every `gos-build` command does around its work: the log's last line."""

from __future__ import annotations

import re
import subprocess
import sys


def test_the_log_ends_with_the_time_and_the_exact_peak_memory(tmp_path):
    """A job's log says its peak memory for the cluster's ``mem_mb``: the kernel's high-water mark of the
    process, which the parent that waits for it reads too (``RUSAGE_CHILDREN`` of a process whose only child it
    is): the two agree within 15 MB (what the process allocates after writing the line, up to its exit: 0-8 MB
    seen). A parent holding 300 MB when it starts the job (as Snakemake holds ~200) does not count: Linux
    carries a process's ``ru_maxrss`` across ``exec``, so the parent's figure then says 300, the log the job's
    own."""
    probe = ("import resource, subprocess, sys; ballast = bytearray(int(sys.argv[3]) << 20); "
             "r = subprocess.run([sys.executable, '-m', 'gos_build.cli', '--log', sys.argv[1], 'grid', sys.argv[2], "
             "'--bbox', '128.0', '43.6', '128.1', '43.7']); "
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    peaks = {}
    for ballast in (0, 300):
        log = tmp_path / f"grid{ballast}.log"
        res = subprocess.run([sys.executable, "-c", probe, str(log), str(tmp_path / "grid.json"), str(ballast)],
                             capture_output=True, text=True, check=True)
        code, measured = res.stdout.split()
        assert code == "0"
        last = log.read_text(encoding="utf-8").splitlines()[-1]
        m = re.fullmatch(r".* INFO gos_build: grid: done in (\d+\.\d) s; peak memory (\d+) MB", last)
        assert m, last
        peaks[ballast] = int(m.group(2)), float(measured)
    logged, measured = peaks[0]
    assert 20 < logged <= measured + 0.5 and measured - logged < 15
    logged, measured = peaks[300]
    assert measured > 300 and abs(logged - peaks[0][0]) < 5


def test_a_command_reuses_the_memory_it_frees_unless_the_user_tunes_the_allocator():
    """Every command has glibc keep what it frees for its next allocations: an array of 64 MB allocated and freed
    four times after the first costs next to no page faults (the kernel's count, ``ru_minflt``), where by
    default each came back as new pages (with or without transparent huge pages). Where the user tunes glibc's
    allocator (``GLIBC_TUNABLES``) the command leaves it as set."""
    import os
    import platform

    import pytest

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's allocator only")
    probe = ("import resource, sys\n"
             "if sys.argv[1] == '1':\n"
             "    from gos_build.cli import _reuse_freed_memory; _reuse_freed_memory()\n"
             "import numpy as np\n"
             "np.ones(8 << 20).sum()\n"
             "f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
             "for _ in range(4): np.ones(8 << 20).sum()\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)\n")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}

    def faults(reuse: bool, **extra) -> int:
        res = subprocess.run([sys.executable, "-c", probe, "1" if reuse else "0"], env={**env, **extra},
                             capture_output=True, text=True, check=True)
        return int(res.stdout)

    fresh, reused = faults(False), faults(True)
    assert fresh >= 4 * 32 and reused * 4 < fresh, (fresh, reused)  # 32: a 64 MB array in 2 MB huge pages
    tuned = faults(True, GLIBC_TUNABLES="glibc.malloc.tcache_count=7")  # glibc's default: tuned, not changed
    assert tuned * 4 >= fresh, (fresh, tuned)
