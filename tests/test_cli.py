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
