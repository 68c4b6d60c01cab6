"""Run every benchmark in bench/ (each with --json) and print what each reports.

Exits non-zero when a benchmark crashed (non-zero exit, no JSON, or a timeout); a missed target
is a result to read in the report, not a crash. `make bench` calls this.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = (
    "webhook_ingress.py",
    "recon_bench.py",
    "odoo_posting.py",
    "backup_bench.py",
    "drill_mttr.py",
)
TIMEOUT_SECONDS = 600
GRACE_SECONDS = 30


def run(script: Path) -> bool:
    """Run one benchmark script; print its JSON report; tell whether it ran to completion."""
    print(f"=== {script.name}", flush=True)
    with subprocess.Popen(
        [sys.executable, str(script), "--json"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            stdout, _ = proc.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            # SIGTERM first: the benchmark then stops its servers and drops its database.
            proc.terminate()
            try:
                proc.communicate(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            print(f"{script.name}: no result after {TIMEOUT_SECONDS} s", file=sys.stderr)
            return False
    if proc.returncode != 0:
        print(f"{script.name}: exited with {proc.returncode}", file=sys.stderr)
        print(stdout)
        return False
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        print(f"{script.name}: output is not JSON", file=sys.stderr)
        print(stdout)
        return False
    print(json.dumps(report, indent=2), flush=True)
    return True


def main() -> int:
    """Run the benchmarks that exist; 1 if any crashed, else 0."""
    scripts = [BENCH / name for name in SCRIPTS if (BENCH / name).is_file()]
    if not scripts:
        print("no benchmark scripts found", file=sys.stderr)
        return 1
    crashed = [script.name for script in scripts if not run(script)]
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
