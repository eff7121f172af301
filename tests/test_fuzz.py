"""Hostile input, bounded for CI: a few hundred inputs for each parser of tests/fuzzing.py
(bench/fuzz.py runs 10^5 of each). Every input: no crash, no hang, under a second."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import TARGETS, Target

EXAMPLES = {"extraction": 100, "site file": 200, "query parser": 400, "search (SQLite)": 80,
            "canonical URL": 400}  # fmt: skip


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_no_input_crashes_or_hangs(target: Target) -> None:
    check = target.checker()

    @settings(
        max_examples=EXAMPLES[target.name], deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )  # fmt: skip
    @given(target.strategy)
    def run(value: Any) -> None:
        check(value)

    try:
        run()
    finally:
        close = getattr(check, "close", None)
        if close is not None:
            close()
