"""Run every benchmark in this folder, one after the other (they share 2 cores badly).

Each benchmark prints ratios measured within its own single run, so numbers from a shared,
noisy machine still compare: absolute frames/s are context, the ratios are the claim.

    python benchmarks/run_all.py [--device cuda] [--only confetti,face]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="passed to benchmarks that accept --device")
    parser.add_argument("--only", default=None, help="comma-separated names (bench_<name>.py)")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        wanted = {f"bench_{n.strip()}.py" for n in args.only.split(",")}
        scripts = [s for s in scripts if s.name in wanted]
    failed = 0
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        cmd = [sys.executable, str(script)]
        if args.device and "--device" in script.read_text():
            cmd += ["--device", args.device]
        failed += subprocess.call(cmd) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
