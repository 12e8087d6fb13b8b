"""Startup cost: how long ``import ragpipe`` and ``ragpipe --version`` take in a fresh process.

Data: none (no evaluation data is read).
Prints a table and writes eval/results/startup.json (p50, min and max seconds of each command,
and the import time net of interpreter start). Goal: ``import ragpipe`` < 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "startup.json"


def time_command(cmd: list[str], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rows = {
        "python_bare_s": [sys.executable, "-c", "pass"],
        "import_ragpipe_s": [sys.executable, "-c", "import ragpipe"],
        "cli_version_s": [sys.executable, "-m", "ragpipe", "--version"],
    }
    results = {}
    for name, cmd in rows.items():
        samples = time_command(cmd, args.repeats)
        results[name] = {"p50": statistics.median(samples), "min": min(samples), "max": max(samples)}
    results["import_ragpipe_net_s"] = results["import_ragpipe_s"]["p50"] - results["python_bare_s"]["p50"]
    print(f"{'measure':<22}{'p50 s':>10}{'min s':>10}{'max s':>10}")
    for name in rows:
        r = results[name]
        print(f"{name:<22}{r['p50']:>10.3f}{r['min']:>10.3f}{r['max']:>10.3f}")
    print(f"import ragpipe (net of interpreter start): {results['import_ragpipe_net_s']:.3f} s (goal < 0.5 s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"repeats": args.repeats, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
