"""MTTR of every drill (`guardia drill all`) against a fresh `guardia up`, as a ratio to the
healthy path measured in the same run.

The stack runs as `make up` runs it: embedded PostgreSQL, the Conekta and Odoo simulators, the
default schedules. The baseline is what the same stack takes,
with no fault, to carry a payment from "the customer paid" to "posted in Odoo" (webhook, worker,
Odoo), the median of BASELINE_PAYMENTS. Each drill's times (detect / mitigate / verified
recovery, from its injection) are reported in seconds and as multiples of that baseline.

    python bench/drill_mttr.py [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import HOST, free_port
from sqlalchemy import text

from guardia.bootstrap import Container
from guardia.drills.harness import simulators
from guardia.entrypoints.cli_support import with_container

BASELINE_PAYMENTS = 5
START_TIMEOUT_S = 180.0
DRILL_TIMEOUT_S = 1500.0


def stack_env(data_dir: Path) -> dict[str, str]:
    """`make up`'s environment on free ports, no real provider configured."""
    port = free_port()
    env = {
        **os.environ,
        "GUARDIA_DATA_DIR": str(data_dir),
        "GUARDIA_PORT": str(port),
        "GUARDIA_PUBLIC_BASE_URL": f"http://{HOST}:{port}",
        "GUARDIA_SANDBOX_CONEKTA_PORT": str(free_port()),
        "GUARDIA_SANDBOX_ODOO_PORT": str(free_port()),
        "GUARDIA_LOG_LEVEL": "WARNING",
    }
    for key in (
        "GUARDIA_CONEKTA_API_KEY",
        "GUARDIA_CONEKTA_WEBHOOK_KEYS",
        "GUARDIA_ODOO_URL",
        "GUARDIA_DATABASE_URL",
    ):
        env.pop(key, None)
    return env


def wait_healthy(env: dict[str, str], process: subprocess.Popen[bytes]) -> None:
    """Wait for the API to answer /healthz; fail if the stack exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    url = f"http://{HOST}:{env['GUARDIA_PORT']}/healthz"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"guardia up exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"guardia up did not answer {url} in {START_TIMEOUT_S:g} s")


async def healthy_payments(container: Container) -> list[float]:
    """Seconds from paying an order in the simulator to its payment posted in Odoo."""
    sims = simulators(container)
    out = []
    for _ in range(BASELINE_PAYMENTS):
        order_id = await sims.create_order()
        await asyncio.sleep(1.0)  # let the order's creation webhooks land first
        started = time.monotonic()
        await sims.pay(order_id)
        while True:
            async with container.engine.connect() as conn:
                posted = await conn.scalar(
                    text(
                        "SELECT count(*) FROM postings WHERE order_id = :o AND kind = 'payment' "
                        "AND state = 'posted'"
                    ),
                    {"o": order_id},
                )
            if posted:
                break
            if time.monotonic() - started > 120:
                raise SystemExit(f"order {order_id} was not posted within 120 s")
            await asyncio.sleep(0.05)
        out.append(time.monotonic() - started)
    return out


def measure(env: dict[str, str]) -> dict[str, Any]:
    """Baseline, then every drill, on the running stack."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        baseline = with_container(healthy_payments)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    done = subprocess.run(
        [sys.executable, "-m", "guardia.entrypoints", "drill", "all", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=DRILL_TIMEOUT_S,
        check=False,
    )
    try:
        reports = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"drill all printed no report: {done.stderr[-2000:]}") from exc
    base = statistics.median(baseline)
    drills = []
    for r in reports:
        times = {
            "detect_s": r["time_to_detect_s"],
            "mitigate_s": r["time_to_mitigate_s"],
            "recover_s": r["time_to_verified_recovery_s"],
        }
        drills.append(
            {
                "name": r["name"],
                "automatic_fix": r["automatic_fix"],
                "recovered": r["recovered"],
                "evidence_complete": r["evidence_complete"],
                **times,
                **{
                    k.replace("_s", "_x_baseline"): (round(v / base, 1) if v is not None else None)
                    for k, v in times.items()
                },
                "error": r["error"],
            }
        )
    return {
        "baseline": {
            "what": "healthy payment: paid in the simulator -> posted in Odoo",
            "runs_s": [round(b, 3) for b in baseline],
            "median_s": round(base, 3),
        },
        "drills": drills,
        "targets": {"detect_s": 60, "recover_s": 300},
        "all_recovered": all(d["recovered"] and d["evidence_complete"] for d in drills),
        "drill_exit_code": done.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guardia-drill-bench-") as tmp:
        env = stack_env(Path(tmp) / "guardia")
        log = (Path(tmp) / "up.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "guardia.entrypoints", "up"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(env, process)
            report = measure(env)
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"baseline (healthy payment -> posted): {report['baseline']['median_s']} s")
        for d in report["drills"]:
            print(
                f"{d['name']:16} detect {d['detect_s']} s ({d['detect_x_baseline']}x)  "
                f"mitigate {d['mitigate_s']} s  recover {d['recover_s']} s "
                f"({d['recover_x_baseline']}x)  recovered={d['recovered']} "
                f"evidence={d['evidence_complete']}"
            )
    return 0 if report["all_recovered"] else 1


if __name__ == "__main__":
    sys.exit(main())
