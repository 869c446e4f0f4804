"""Start-up time of the ELF-only commands, against a bare interpreter.

    python benchmarks/startup.py [CORE]

Prints the median wall time of `kcoretool -c CORE info` and of
`python -c pass` measured in the same run, their difference (what kcoretool
adds) and whether drgn was imported (it must not be: target < 0.25 s).
"""

from __future__ import annotations

import pathlib
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


def median_time(argv, runs=15):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    core = sys.argv[1] if len(sys.argv) > 1 else str(REPO / "fixtures" / "kcore-6.1.core")
    base = median_time([sys.executable, "-c", "pass"])
    results = {}
    for cmd in ("info", "segments", "vmcoreinfo"):
        results[cmd] = median_time([sys.executable, "-m", "kcoretool", "-c", core, cmd])
    imported = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kcoretool", "-c", core, "info"],
        capture_output=True, text=True,
    ).stderr
    print(f"python -c pass: {base * 1000:7.1f} ms (baseline)")
    for cmd, t in results.items():
        verdict = "ok" if t < 0.25 else "SLOW"
        print(f"kcoretool {cmd:<10}: {t * 1000:7.1f} ms  ratio {t / base:4.1f}x  "
              f"added {(t - base) * 1000:6.1f} ms  [{verdict}: target < 250 ms]")
    print("drgn imported:", "YES (bug)" if " drgn" in imported else "no")


if __name__ == "__main__":
    main()
