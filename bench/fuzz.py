"""Hostile input at volume: 10^5 generated inputs for each parser of tests/fuzzing.py.

Extraction (tag soup, deep nesting, bad entities, flipped bytes, raw bytes), the site-file
loader (any mapping of the schema's keys, mangled valid files), the query parser, search
on a small SQLite archive (the parsed query becomes an FTS5 expression) and URL
canonicalisation (also: canonical twice is canonical once). Prints, per target, inputs
run, failures (an exception or a broken invariant), inputs over 1 CPU second, how many of
those (up to 50) are over it again when run a second time (the input's own cost, not a
pause of the process), the slowest input (wall clock) and inputs/s; exit 1 on a failure
or an input slow twice.

    .venv/bin/python bench/fuzz.py [--inputs 100000] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.fuzzing import TARGETS, Target  # noqa: E402

MAX_RERUNS = 50  # slow inputs kept to run again


def run_target(target: Target, inputs: int) -> dict[str, Any]:
    check = target.checker()
    stats: dict[str, Any] = {"inputs": 0, "failures": 0, "slow": 0, "slowest": 0.0, "first": None}
    slow_values: list[Any] = []

    @settings(
        max_examples=inputs, deadline=None, database=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(target.strategy)
    def run(value: Any) -> None:
        stats["inputs"] += 1
        started = time.perf_counter()
        try:
            check(value)
        except AssertionError as exc:
            if str(exc).startswith("took "):
                stats["slow"] += 1
                if len(slow_values) < MAX_RERUNS:
                    slow_values.append(value)
            else:
                stats["failures"] += 1
            stats["first"] = stats["first"] or f"{exc!s:.300}"
        except Exception as exc:  # noqa: BLE001 -- counting every crash is the point
            stats["failures"] += 1
            stats["first"] = (
                stats["first"] or f"{type(exc).__name__}: {exc!s:.300} on {value!r:.200}"
            )
        stats["slowest"] = max(stats["slowest"], time.perf_counter() - started)

    started = time.perf_counter()
    run()
    stats["seconds"] = time.perf_counter() - started
    # an input over the limit is run again: slow again, it is the input's cost; fast the
    # second time, the first was a pause of the process or the machine (a GC, a checkpoint)
    stats["slow_again"] = 0
    for value in slow_values:
        try:
            check(value)
        except AssertionError as exc:
            if str(exc).startswith("took "):
                stats["slow_again"] += 1
                stats["first_slow_again"] = stats.get("first_slow_again") or f"{exc!s:.300}"
    close = getattr(check, "close", None)
    if close is not None:
        close()
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--only", help="one target, by name")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"{args.inputs:,} inputs a target; load average at start {load:.2f} on {os.cpu_count()} cores"
    )
    print(
        f"{'target':18} {'inputs':>9} {'failures':>9} {'over 1 s':>9} {'again':>6} {'slowest':>9} "
        f"{'inputs/s':>9}"
    )
    bad = False
    for target in TARGETS:
        if args.only and target.name != args.only:
            continue
        s = run_target(target, args.inputs)
        bad |= bool(s["failures"] or s["slow_again"])
        print(f"{target.name:18} {s['inputs']:>9,} {s['failures']:>9} {s['slow']:>9} "
              f"{s['slow_again']:>6} {s['slowest']:>8.3f}s {s['inputs'] / s['seconds']:>9,.0f}",
              flush=True)  # fmt: skip
        if s["first"]:
            print(f"  first failure: {s['first']}")
        if s.get("first_slow_again"):
            print(f"  slow again: {s['first_slow_again']}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
