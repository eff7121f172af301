"""Revisits of known articles: when each is due, which are due now, and what a run found.

An article is due by its age and its history (settings.yaml `revisit:`, per-site
overrides): its age is counted from when it was first seen or last changed (edited, gone,
moved, restored), the tier of that age says how often it is checked, and an article that
changed before is checked `changed_speedup` times as often. After every check, and after
a failed one too, `next_check` is set from the tier, so a run selects its due articles
with one range scan of `ix_articles_site_next_check`, most overdue first, at most its
budget (`archive.store.due_articles`): a run's cost grows with what is due, not with the
size of the archive. This module is the policy alone: pure functions, no database.

What a run's revisits found is judged once the run is over (`judge_revisits`): when most
revisits failed (no answer, 5xx, robots.txt, another domain) or no start URL answered,
the site was down and nothing it seemed to say counts as a takedown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from archive.settings import RevisitSettings


def check_interval(policy: RevisitSettings, age: timedelta, changed_before: bool) -> timedelta:
    """How long after a check the article is due again (zero: at the next run)."""
    hours = policy.tiers[-1].every_hours
    for tier in policy.tiers:
        if tier.age_days is None or age <= timedelta(days=tier.age_days):
            hours = tier.every_hours
            break
    if changed_before:
        hours /= policy.changed_speedup
    return timedelta(hours=hours)


def next_check(
    policy: RevisitSettings,
    now: datetime,
    first_seen: datetime,
    last_changed: datetime | None,
    version: int,
) -> datetime:
    """When an article checked (or failed to be checked) at `now` is next due."""
    anchor = max(first_seen, last_changed) if last_changed is not None else first_seen
    return now + check_interval(policy, max(now - anchor, timedelta(0)), version > 1)


def revisit_budget(policy: RevisitSettings, max_pages: int) -> int:
    """How many revisits one run of a site may make."""
    if not policy.enabled:
        return 0
    return int(policy.max_revisits * max_pages)


@dataclass(frozen=True)
class RevisitVerdict:
    """A run's revisits judged as a whole."""

    unreachable: bool
    mass_gone: bool
    message: str | None  # why, in one line, for the run and the alert


def judge_revisits(
    policy: RevisitSettings,
    checked: int,
    failed: int,
    gone: int,
    start_requests: int,
    start_responses_ok: int,
) -> RevisitVerdict:
    """Was the site unreachable (then nothing is marked gone), or did a mass takedown happen?"""
    attempted = checked + failed
    if start_requests and not start_responses_ok:
        return RevisitVerdict(True, False, "no start URL, feed or sitemap answered")
    if failed >= policy.unreachable_min_failures and failed > policy.unreachable_share * attempted:
        return RevisitVerdict(
            True,
            False,
            f"{failed} of {attempted} revisits got no usable answer "
            "(connection errors, timeouts, 5xx, robots.txt or another domain)",
        )
    if gone >= policy.mass_gone_min and gone > policy.mass_gone_share * attempted:
        return RevisitVerdict(
            False,
            True,
            f"{gone} of {attempted} revisited articles are gone in one run "
            "(a purge, or a changed template or URL scheme?)",
        )
    return RevisitVerdict(False, False, None)
