"""Reconciliation core benchmark: N statement lines x ~N ledger entries, default noise.

What is timed (wall clock, one run): normalise both frames, run passes (a)-(d), and write matches,
exceptions and KPI as parquet to a temporary directory. The synthetic data is generated before the
clock starts and handed to a fresh child process as parquet, so the peak RSS reported
(``ru_maxrss`` of that child) covers loading the inputs plus the pipeline, not the generator.

The baseline, measured in the same child on the same data, is the bare exact hash join a naive
system would run: amounts parsed to cents, then an inner join on ``(account, amount_cents,
reference)`` with references as exported. Precision and recall of both are computed afterwards
against the ground truth (not timed).

    .venv/bin/python bench/recon_bench.py                # 1 000 000 lines
    .venv/bin/python bench/recon_bench.py --lines 100000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from guardia.recon.match import ReconResult, match
from guardia.recon.normalize import normalize_ledger, normalize_statement, signed_amount_expr
from guardia.recon.score import score
from guardia.recon.synth import NoiseConfig, generate

TARGET_SECONDS = 10.0
TARGET_RECALL = 0.98


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(workdir: Path) -> dict[str, float]:
    """Run the timed pipeline and the baseline on parquet inputs; return the measurements."""
    statement = pl.read_parquet(workdir / "statement.parquet")
    ledger = pl.read_parquet(workdir / "ledger.parquet")
    out = workdir / "out"
    out.mkdir()

    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    normalized_statement = normalize_statement(statement)
    normalized_ledger = normalize_ledger(ledger)
    normalized = time.perf_counter()
    result = match(normalized_statement, normalized_ledger)
    matched = time.perf_counter()
    result.matches.write_parquet(out / "matches.parquet")
    result.exceptions.write_parquet(out / "exceptions.parquet")
    result.kpi.write_parquet(out / "kpi.parquet")
    result.balance_breaks.write_parquet(out / "balance_breaks.parquet")
    written = time.perf_counter()
    cpu_used = _cpu_seconds() - cpu_start

    base_start = time.perf_counter()
    baseline = (
        statement.lazy()
        .with_columns(amount_cents=signed_amount_expr(pl.col("cargo"), pl.col("abono")))
        .join(ledger.lazy(), on=["account", "amount_cents", "reference"], how="inner")
        .select("line_id", "entry_id")
        .collect()
    )
    base_end = time.perf_counter()
    baseline.write_parquet(out / "baseline.parquet")
    summary = result.summary()
    return {
        "wall_seconds": written - start,
        "cpu_seconds": cpu_used,
        "normalize_seconds": normalized - start,
        "match_seconds": matched - normalized,
        "write_seconds": written - matched,
        "baseline_seconds": base_end - base_start,
        "baseline_rows": baseline.height,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "match_rate_count": summary["match_rate_count"],
        "match_rate_amount": summary["match_rate_amount"],
        "exceptions": summary["exceptions"],
        "balance_breaks": summary["balance_breaks"],
    }


def _baseline_quality(baseline: pl.DataFrame, truth: pl.DataFrame) -> dict[str, float]:
    true_pairs = (
        truth.filter(pl.col("expected") == "match")
        .select(line_id="bank_line_id", entry_id="ledger_ids")
        .explode("entry_id")
    )
    correct = baseline.join(true_pairs, on=["line_id", "entry_id"]).height
    return {
        "baseline_precision": correct / baseline.height if baseline.height else 1.0,
        "baseline_recall": correct / true_pairs.height if true_pairs.height else 1.0,
    }


def run(lines: int, seed: int) -> dict[str, object]:
    """Generate, run the child, score; return every figure of the report."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    world = generate(lines, seed, NoiseConfig())
    generated = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="recon-bench-") as tmp:
        workdir = Path(tmp)
        world.statement.write_parquet(workdir / "statement.parquet")
        world.ledger.write_parquet(workdir / "ledger.parquet")
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(workdir)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures: dict[str, object] = json.loads(child.stdout)
        matches = pl.read_parquet(workdir / "out" / "matches.parquet")
        exceptions = pl.read_parquet(workdir / "out" / "exceptions.parquet")
        kpi = pl.read_parquet(workdir / "out" / "kpi.parquet")
        breaks = pl.read_parquet(workdir / "out" / "balance_breaks.parquet")
        baseline = pl.read_parquet(workdir / "out" / "baseline.parquet")
    report = score(ReconResult(matches, exceptions, kpi, breaks), world.truth)
    wall = float(str(figures["wall_seconds"]))
    base = float(str(figures["baseline_seconds"]))
    figures.update(
        {
            "lines": world.statement.height,
            "ledger_entries": world.ledger.height,
            "generate_seconds": generated,
            "ratio_vs_baseline": wall / base if base else float("inf"),
            "cpus": len(os.sched_getaffinity(0)),
            "loadavg_1min_before": load_before,
            "loadavg_1min_after": os.getloadavg()[0],
            "python": platform.python_version(),
            "polars": pl.__version__,
            **report.as_dict(),
            **_baseline_quality(baseline, world.truth),
            "targets": {
                "wall_seconds_lt": TARGET_SECONDS,
                "false_auto_matches_eq": 0,
                "recall_ge": TARGET_RECALL,
            },
            "per_label_recall": {
                row["label"]: round(row["recall"], 6)
                for row in report.per_label.iter_rows(named=True)
            },
        }
    )
    return figures


def _print(figures: dict[str, object]) -> None:
    def f(key: str, fmt: str = "{:.3f}") -> str:
        return fmt.format(figures[key])

    print(
        f"lines              {figures['lines']:,} statement x {figures['ledger_entries']:,} ledger"
    )
    print(f"cpus / polars      {figures['cpus']} / {figures['polars']}")
    print(f"generate           {f('generate_seconds')} s (not timed)")
    print(
        f"wall (timed)       {f('wall_seconds')} s = normalise {f('normalize_seconds')}"
        f" + match {f('match_seconds')} + write {f('write_seconds')}"
    )
    print(f"cpu (timed part)   {f('cpu_seconds')} s user+sys across threads")
    print(
        f"machine load       {f('loadavg_1min_before', '{:.2f}')} before, "
        f"{f('loadavg_1min_after', '{:.2f}')} after (1-min loadavg, shared machine)"
    )
    print(f"peak RSS (child)   {f('peak_rss_mb', '{:.0f}')} MB")
    print(f"precision / recall {f('precision', '{:.6f}')} / {f('recall', '{:.6f}')} (pairs)")
    print(f"line prec / recall {f('line_precision', '{:.6f}')} / {f('line_recall', '{:.6f}')}")
    print(f"false auto-matches {figures['false_auto_matches']}")
    print(
        f"auto-match rate    {f('match_rate_count', '{:.4f}')} by count, "
        f"{f('match_rate_amount', '{:.4f}')} by amount"
    )
    print(f"exceptions         {figures['exceptions']:,}")
    print(
        f"baseline join      {f('baseline_seconds')} s, {figures['baseline_rows']:,} rows, "
        f"precision {f('baseline_precision', '{:.4f}')}, recall {f('baseline_recall', '{:.4f}')}"
    )
    print(f"ratio              {f('ratio_vs_baseline', '{:.1f}')}x the bare join")
    wall = float(str(figures["wall_seconds"]))
    verdict = "met" if wall < TARGET_SECONDS else f"MISSED by {wall - TARGET_SECONDS:.2f} s"
    print(f"target < {TARGET_SECONDS:.0f} s      {verdict}")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the benchmark (or, internally, its timed child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20_250_416)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(args.child)))
        return 0
    figures = run(args.lines, args.seed)
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
    else:
        _print(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
