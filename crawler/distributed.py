"""Distributed runs in Redis: the keys, the run's life (enqueue, watch, finish), dead workers.

A distributed run is still one `crawl_runs` row per site run. Its frontier lives in Redis
under `<prefix>run:<id>:` (scrapy-redis's request queue and duplicate filter, one per run,
so a run knows when *its* queue is drained), and `ufarchive worker` processes
(crawler.worker) crawl it. The process that started the run (`schedule` in distributed
mode, or `crawl --distributed`) is its coordinator: it pushes the start requests, copies
the workers' counters and errors into the run row every second, and finishes the run
when the queue is empty and no worker holds a request of it. Workers never write the run
row, so their counters add up instead of overwriting each other.

A request a worker takes moves atomically from the queue into the run's `inflight` hash
(under the worker's id) and leaves it only once the worker has handled it and committed
what it stored. A worker that stops saying it is alive (`worker:<id>` expires after
`crawl.worker_timeout_seconds`) is dead: any live process moves its in-flight requests
back into the queue, where another worker takes them up.

Each side wakes the other through Redis pub/sub instead of waiting for its next poll:
the acknowledgement that leaves a run drained tells the coordinators (`events`), the
coordinator tells the workers when runs arrive or close (`wake`), and a worker that has
closed a run tells the coordinators. A message only says "look now"; what is true is
always read from the keys, so a message lost (Redis restarting) costs a poll's delay.

Redis calls retry with backoff (a Redis restart of a few seconds is waited out); the
coordinator's loop also survives longer outages of Redis or the database and resumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from archive.errors import UfarchiveError
from archive.models import CrawlRun, RunStatus
from archive.settings import Settings
from archive.store import RunCounters, derive_underived, finish_run, update_run
from crawler.sites import SiteConfig

log = logging.getLogger("ufarchive.distributed")

POLL_SECONDS = 0.5  # the coordinator looks at every run this often (and when woken)
# and, at most this often, copies a run's progress into its row (`ufarchive status`; a
# transaction on the archive: 40 a second for 20 runs at POLL_SECONDS) and looks for dead
# workers' requests (a worker is dead after `crawl.worker_timeout_seconds` anyway)
PROGRESS_SECONDS = 2.0
# The counters a worker adds to a run's `counters` hash (RunCounters' integer fields, the
# responses by status as `status:<code>`, and what the coordinator needs to judge the run).
COUNTER_FIELDS = (
    "requests", "bytes_received", "articles_new", "articles_changed", "articles_unchanged",
    "articles_gone", "articles_failed", "revisits_checked", "revisits_not_modified",
    "revisits_failed", "articles_restored", "articles_moved", "unstored", "start_ok",
)  # fmt: skip
CLOSE_WAIT_SECONDS = 60  # how long a drained run waits for its workers' last words
KEY_TTL_SECONDS = 7 * 86400  # a run's keys outlive a lost coordinator only this long


def connect(url: str, patient: bool = True) -> redis.Redis:
    """A client that waits out a Redis restart: every command retries with backoff for
    about half a minute before the error reaches the caller (unless not `patient`)."""
    if not patient:
        return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=20),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


@dataclass(frozen=True)
class Keys:
    """The Redis keys of one deployment (`crawl.redis_key_prefix`)."""

    prefix: str

    @property
    def runs(self) -> str:
        return f"{self.prefix}runs"  # hash: run id -> {"site", "deadline"}

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}"  # expires unless the worker is alive

    @property
    def events(self) -> str:
        return f"{self.prefix}events"  # pub/sub to coordinators: a run drained or closed

    @property
    def wake(self) -> str:
        return f"{self.prefix}wake"  # pub/sub to workers: runs arrived or are closing

    def domain(self, netloc: str) -> str:
        return f"{self.prefix}domain:{netloc}"  # politeness across workers (crawler.worker)

    def run(self, run_id: int) -> RunKeys:
        return RunKeys(f"{self.prefix}run:{run_id}:")


@dataclass(frozen=True)
class RunKeys:
    base: str

    queue = property(lambda self: self.base + "queue")  # scrapy-redis priority queue (zset)
    seen = property(lambda self: self.base + "seen")  # scrapy-redis duplicate filter (set)
    inflight = property(lambda self: self.base + "inflight")  # "<worker>|<n>" -> "<score>|<req>"
    counter = property(lambda self: self.base + "n")  # numbers the in-flight entries
    counters = property(lambda self: self.base + "counters")  # hash of added-up counters
    errors = property(lambda self: self.base + "errors")  # list of JSON [url, kind, message]
    workers = property(lambda self: self.base + "workers")  # set of workers that took part
    budget = property(lambda self: self.base + "budget")  # pages requested (max_pages)
    scheduled = property(lambda self: self.base + "scheduled")  # article URLs requested
    stats = property(lambda self: self.base + "stats")  # the crawlers' ufarchive/* stats
    closed = property(lambda self: self.base + "closed")  # workers done with the run
    derived = property(lambda self: self.base + "derived")  # workers whose last pass is done
    due = property(lambda self: self.base + "due")  # taken by the worker that revisits

    def robots(self, netloc: str) -> str:
        return f"{self.base}robots:{netloc}"


# Take the best request and hold it for the worker, in one step (scrapy-redis's own pop
# removes it outright, so a killed worker's requests would be lost).
POP_SCRIPT = """
local r = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #r == 0 then return false end
redis.call('ZREM', KEYS[1], r[1])
local token = ARGV[1] .. '|' .. redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], token, r[2] .. '|' .. r[1])
redis.call('SADD', KEYS[4], ARGV[1])
return {token, r[1]}
"""
# Let go of handled requests; if that leaves the run drained (queue empty, nothing held),
# say so to the coordinators in the same step.
ACK_SCRIPT = """
local n = redis.call('HDEL', KEYS[1], unpack(ARGV, 3))
if redis.call('HLEN', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return n
"""
ACK_CHUNK = 1000  # tokens a call (Lua's unpack() has a limit of a few thousand)
# Put a held request back in the queue, unless it was acknowledged meanwhile.
REQUEUE_SCRIPT = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local bar = string.find(held, '|', 1, true)
redis.call('ZADD', KEYS[2], string.sub(held, 1, bar - 1), string.sub(held, bar + 1))
return 1
"""


# Queue a request: scrapy-redis's duplicate filter and queue push, and for a new article's
# link (ARGV[4], its canonical URL) the run's claim on it, one round trip. The claim: -2 if
# a worker has scheduled the URL already, -1 if the run's page budget is spent (the page
# counted, as a refused INCR always was; the URL not scheduled, so the next run finds it),
# else the page taken and the URL scheduled, so two workers never both schedule one URL.
# Then 0 if the fingerprint was seen (ARGV[1] empty: a request never filtered), else 1,
# queued.
ENQUEUE_SCRIPT = """
if ARGV[4] ~= '' then
  if redis.call('SISMEMBER', KEYS[3], ARGV[4]) == 1 then return -2 end
  if redis.call('INCR', KEYS[4]) > tonumber(ARGV[5]) then return -1 end
  redis.call('SADD', KEYS[3], ARGV[4])
end
if ARGV[1] ~= '' and redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
# Add a worker's counters of a run to the run's: KEYS counters and stats; ARGV the keys'
# time to live, whether a site was unreachable (1 or 0), how many counters and stats
# follow as (name, amount) pairs, and then (name, text) pairs of texts to set among the
# stats. One call (~0.3 ms) where a MULTI block of a command each took 1.3-2.3 ms.
COUNTERS_SCRIPT = """
local counters, stats = tonumber(ARGV[3]), tonumber(ARGV[4])
local i = 5
for _ = 1, counters do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
for _ = 1, stats do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2 end
while i < #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2 end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'unreachable', 1) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"""
_scripts: dict[str, Any] = {}


def _registered(server: redis.Redis, script: str) -> Any:
    found = _scripts.get(script)
    if found is None:
        found = _scripts[script] = server.register_script(script)
    return found


def run_script(server: redis.Redis, script: str, keys: list[Any], args: list[Any]) -> Any:
    """Run one of the Lua scripts above by its SHA (EVALSHA), not by sending its text each
    time (every request runs two or three); a server that does not know it yet (new, or
    restarted) is sent it once (redis-py's Script)."""
    return _registered(server, script)(keys=keys, args=args, client=server)


def run_scripts(
    server: redis.Redis, script: str, calls: Sequence[tuple[list[Any], list[Any]]]
) -> list[Any]:
    """`run_script` for many calls in one round trip: a pipeline of EVALSHAs (not a
    transaction: each call is atomic on its own). redis-py's Script in a pipeline asks
    SCRIPT EXISTS first, a round trip more every time; here a server that lacks the script
    answers NOSCRIPT to every call (none ran), and is sent it and the calls again."""
    if not calls:
        return []
    sha = _registered(server, script).sha

    def send() -> list[Any]:
        pipe = server.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return list(pipe.execute())

    try:
        return send()
    except NoScriptError:
        server.script_load(script)
        return send()


def number_or_text(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def live_workers(server: redis.Redis, keys: Keys) -> list[str]:
    """Ids of the workers alive now."""
    names = [as_text(k) for k in server.scan_iter(match=keys.worker("*"), count=500)]
    return [n.removeprefix(keys.worker("")) for n in names]


def requeue_dead(server: redis.Redis, keys: Keys, run_id: int, alive: Iterable[str]) -> int:
    """Move the requests that dead workers held back into the run's queue."""
    run = keys.run(run_id)
    alive_set = set(alive)
    dead = [t for t in server.hkeys(run.inflight) if as_text(t).split("|", 1)[0] not in alive_set]
    moved = requeue(server, run, dead)
    if moved:
        log.warning("run %d: %d requests of dead workers went back to the queue", run_id, moved)
    return moved


def requeue(server: redis.Redis, run: RunKeys, tokens: Sequence[bytes | str]) -> int:
    """Put these held requests back in the run's queue, those not acknowledged meanwhile;
    how many went back."""
    calls = [([run.inflight, run.queue], [token]) for token in tokens]
    return sum(int(moved) for moved in run_scripts(server, REQUEUE_SCRIPT, calls))


def acknowledge(server: redis.Redis, keys: Keys, run_id: int, tokens: list[str]) -> None:
    """The worker has handled these requests and committed what they stored."""
    run = keys.run(run_id)
    for start in range(0, len(tokens), ACK_CHUNK):
        run_script(
            server, ACK_SCRIPT, [run.inflight, run.queue],
            [keys.events, str(run_id), *tokens[start : start + ACK_CHUNK]],
        )  # fmt: skip


class Wakeup:
    """Messages on a pub/sub channel, waited for with a timeout: `wait()` returns as soon as
    one arrives (with whatever else has arrived by then), or when the time is up. Redis
    trouble is not raised: the wait sleeps its time out, and the next one subscribes anew
    (redis-py also subscribes again by itself when it reconnects)."""

    def __init__(self, server: redis.Redis, channel: str) -> None:
        self.server, self.channel = server, channel
        self.pubsub: Any = None

    def wait(self, timeout: float) -> set[str]:
        deadline = time.monotonic() + timeout
        try:
            if self.pubsub is None:
                self.pubsub = self.server.pubsub(ignore_subscribe_messages=True)
                self.pubsub.subscribe(self.channel)
            got: set[str] = set()
            while True:
                left = deadline - time.monotonic()
                message = self.pubsub.get_message(timeout=max(0.0, left))
                if message is None:  # (or a subscription's confirmation)
                    if got or left <= 0:
                        return got
                elif message["type"] == "message":
                    got.add(as_text(message["data"]))
                    deadline = time.monotonic()  # then only what has already arrived
        except RedisError:
            self.close()
            time.sleep(max(0.0, deadline - time.monotonic()))
            return set()

    def close(self) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(RedisError):
                self.pubsub.close()
            self.pubsub = None


def is_drained(server: redis.Redis, keys: Keys, run_id: int) -> bool:
    """The queue is empty and no worker holds a request (read in one transaction: a worker
    pushes a page's links before it lets go of the page)."""
    run = keys.run(run_id)
    pipe = server.pipeline(transaction=True)
    pipe.zcard(run.queue)
    pipe.hlen(run.inflight)
    queued, held = pipe.execute()
    return int(queued) == 0 and int(held) == 0


# --- enqueueing a run -------------------------------------------------------------------


def start_requests(site: SiteConfig) -> list[tuple[str, bytes]]:
    """(URL, the request as scrapy-redis stores it) for each start URL, feed and sitemap:
    what NewsSpider.start() yields, encoded as `Request.to_dict()` with the callbacks named."""
    from scrapy import Request

    out = []
    for urls, callback in (
        (site.start_urls, "parse_listing"),
        (site.feed_urls, "parse_feed"),
        (site.sitemap_urls, "parse_sitemap"),
    ):
        for url in urls:
            data = Request(url, meta={"kind": "start"}, dont_filter=True).to_dict()
            data.update(callback=callback, errback="on_error")
            out.append((url, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)))
    return out


def enqueue_run(
    server: redis.Redis, keys: Keys, site: SiteConfig, run_id: int, timeout_seconds: float
) -> int:
    """Make the run known to workers and push its start requests; returns their number."""
    from scrapy import Request
    from scrapy_redis.dupefilter import RFPDupeFilter

    run = keys.run(run_id)
    requests = start_requests(site)
    seen = RFPDupeFilter(server, key=run.seen)
    pipe = server.pipeline(transaction=True)
    for url, data in requests:
        # a link back to a start URL is a duplicate, as in a local crawl
        pipe.sadd(run.seen, seen.request_fingerprint(Request(url)))
        pipe.zadd(run.queue, {data: 0})
    pipe.incrby(run.budget, len(requests))
    pipe.hset(
        keys.runs,
        str(run_id),
        json.dumps(
            {"site": site.name, "deadline": time.time() + timeout_seconds, "starts": len(requests)}
        ),
    )
    pipe.execute()
    return len(requests)


def run_infos(server: redis.Redis, keys: Keys) -> dict[int, dict[str, Any]]:
    """Run id -> {"site", "deadline", "starts", "closing"} of the runs in Redis."""
    return {int(run_id): json.loads(value) for run_id, value in server.hgetall(keys.runs).items()}


def active_runs(server: redis.Redis, keys: Keys) -> dict[int, str]:
    """Run id -> site name of the runs in progress (closing ones too)."""
    return {run_id: info["site"] for run_id, info in run_infos(server, keys).items()}


def is_active(server: redis.Redis, keys: Keys, run_id: int) -> bool:
    """The run is in progress and not closing."""
    value = server.hget(keys.runs, str(run_id))
    return value is not None and not json.loads(value).get("closing")


def close_run(server: redis.Redis, keys: Keys, run_id: int) -> None:
    """Tell the workers the run is drained: they close their crawlers for it (judging their
    revisits, sending their last counters) and say so in the run's `closed` set."""
    value = server.hget(keys.runs, str(run_id))
    if value is not None:
        info = json.loads(value)
        info["closing"] = True
        server.hset(keys.runs, str(run_id), json.dumps(info))
        server.publish(keys.wake, str(run_id))


def closing_workers(server: redis.Redis, keys: Keys, run_id: int, alive: Iterable[str]) -> set[str]:
    """Live workers that took part in the run and have not closed it yet."""
    run = keys.run(run_id)
    took_part = {as_text(w) for w in server.smembers(run.workers)}
    closed = {as_text(w) for w in server.smembers(run.closed)}
    return (took_part & set(alive)) - closed


def last_to_derive(server: redis.Redis, keys: Keys, run_id: int, worker: str) -> bool:
    """The worker has derived all it stored of the run: is it the last live worker that
    took part to get there? Then it derives what the site still lacks (what a dead worker
    left); the others would only race its passes for the same articles (at the end of a
    4-worker bench run, 3 s of passes waiting on each other for the clusters' lock). Of
    two workers that get there together, at least one sees the other (each adds itself
    first)."""
    run = keys.run(run_id)
    pipe = server.pipeline(transaction=True)
    pipe.sadd(run.derived, worker)
    pipe.expire(run.derived, KEY_TTL_SECONDS)
    pipe.smembers(run.workers)
    pipe.smembers(run.derived)
    _, _, took_part, derived = pipe.execute()
    others = {as_text(w) for w in took_part} - {as_text(w) for w in derived} - {worker}
    return not others & set(live_workers(server, keys))


def drop_run(server: redis.Redis, keys: Keys, run_id: int) -> None:
    """Forget a finished run: workers close their spiders for it when they next idle."""
    run = keys.run(run_id)
    server.hdel(keys.runs, str(run_id))
    names = [run.queue, run.seen, run.inflight, run.counter, run.counters, run.errors]
    names += [run.workers, run.budget, run.scheduled, run.stats, run.closed, run.due]
    names += [run.derived]
    names += list(server.scan_iter(match=run.robots("*"), count=500))
    server.delete(*names)
    server.publish(keys.wake, str(run_id))


# --- the coordinator --------------------------------------------------------------------


@dataclass
class RunProgress:
    """What the coordinator has copied of a run so far."""

    run_id: int
    start_requests: int
    deadline: float
    finished: bool = False
    closing_since: float | None = None  # when the run was found drained
    # time.monotonic() of the last copy_progress; the first is due at once (monotonic time
    # starts near 0 at boot: a 0 here left a run's first copy for later on a new machine)
    copied_at: float = float("-inf")

    def copy_due(self) -> bool:
        """Time to copy the run's progress again (PROGRESS_SECONDS); if so, it is done now."""
        now = time.monotonic()
        if now - self.copied_at < PROGRESS_SECONDS:
            return False
        self.copied_at = now
        return True


def counters_of(raw: dict[str, int]) -> RunCounters:
    """A run's counters as the workers added them up in its `counters` hash."""
    return RunCounters(
        requests=raw.get("requests", 0),
        bytes_received=raw.get("bytes_received", 0),
        responses_by_status={
            k.removeprefix("status:"): v for k, v in raw.items() if k.startswith("status:")
        },
        unreachable=bool(raw.get("unreachable")),
        **{f: raw.get(f, 0) for f in COUNTER_FIELDS if f.startswith(("articles_", "revisits_"))},
    )


def copy_progress(
    server: redis.Redis, keys: Keys, sessions: sessionmaker[Session], run_id: int
) -> dict[str, int]:
    """Write the workers' counters and new errors into the run row; the raw counters.
    What it reads of the run (and the errors it takes) comes in one transaction, one round
    trip."""
    run = keys.run(run_id)
    pipe = server.pipeline(transaction=True)
    pipe.hgetall(run.counters)
    pipe.lrange(run.errors, 0, -1)
    pipe.delete(run.errors)
    pipe.scard(run.workers)
    pipe.hgetall(run.stats)
    counted, items, _, workers, stored_stats = pipe.execute()
    raw = {as_text(k): int(v) for k, v in counted.items()}
    errors = [(url, kind, message) for url, kind, message in map(json.loads, items)]
    stats = {as_text(k): number_or_text(as_text(v)) for k, v in stored_stats.items()}
    try:
        with sessions() as session, session.begin():
            update_run(session, run_id, counters_of(raw), errors, stats=stats or None)
            session.get_one(CrawlRun, run_id).workers = int(workers)
    except SQLAlchemyError:
        if errors:  # keep them for the next try
            server.rpush(run.errors, *[json.dumps(e) for e in errors])
        raise
    return raw


def catch_up(server: redis.Redis, keys: Keys, sessions: sessionmaker[Session], run_id: int) -> None:
    """A worker that took part and never finished its last derive pass for the run (it
    died) may have stored articles that are not in the index; the live workers left the
    site's catch-up to the last of them (last_to_derive), which was not this one: derive
    what the site lacks now. If that fails, the site's next run does it."""
    run = keys.run(run_id)
    took_part = {as_text(w) for w in server.smembers(run.workers)}
    if not took_part - {as_text(w) for w in server.smembers(run.derived)}:
        return
    try:
        with sessions() as session:
            site_id = session.get_one(CrawlRun, run_id).site_id
        count = derive_underived(sessions, site_id)
    except SQLAlchemyError as exc:
        log.warning("run %d: could not derive what a dead worker left: %s", run_id, exc)
        return
    if count:
        log.info("run %d: derived %d articles a dead worker left", run_id, count)


def finish(
    server: redis.Redis,
    keys: Keys,
    sessions: sessionmaker[Session],
    progress: RunProgress,
    status: RunStatus | None = None,
    message: str | None = None,
) -> None:
    """The run's last counters, its outcome (judged as a local crawl's), and its keys gone."""
    raw = copy_progress(server, keys, sessions, progress.run_id)
    if status is None:
        status = RunStatus.SUCCEEDED
        if progress.start_requests and not raw.get("start_ok"):
            status, message = RunStatus.FAILED, "no start URL, feed or sitemap answered"
        elif raw.get("unstored"):
            status = RunStatus.FAILED
            message = f"{raw['unstored']} pages could not be stored (errors of kind 'store')"
        catch_up(server, keys, sessions, progress.run_id)
    with sessions() as session, session.begin():
        finish_run(session, progress.run_id, status, message)
    drop_run(server, keys, progress.run_id)
    progress.finished = True


def look_at(
    server: redis.Redis,
    keys: Keys,
    sessions: sessionmaker[Session],
    run: RunProgress,
    alive: list[str],
    full: bool,
) -> None:
    """One look at a run: finish it if it is past its deadline, or closed by every worker
    that took part; close it if it is drained; on a `full` look (every poll), once every
    PROGRESS_SECONDS, requeue dead workers' requests and copy its progress."""
    slow = full and run.copy_due()
    if slow:
        requeue_dead(server, keys, run.run_id, alive)
    if time.time() > run.deadline:
        server.delete(keys.run(run.run_id).queue)
        finish(server, keys, sessions, run, RunStatus.TIMEOUT,
               "stopped after the wall-clock limit (crawl_timeout_minutes)")  # fmt: skip
    elif run.closing_since is not None:
        # drained: finish once every worker that took part has closed the run
        waiting = closing_workers(server, keys, run.run_id, alive)
        if not waiting or time.time() - run.closing_since > CLOSE_WAIT_SECONDS:
            finish(server, keys, sessions, run)
        elif slow:
            copy_progress(server, keys, sessions, run.run_id)
    elif is_drained(server, keys, run.run_id):
        close_run(server, keys, run.run_id)
        run.closing_since = time.time()
    elif slow:
        copy_progress(server, keys, sessions, run.run_id)


def watch_runs(
    server: redis.Redis,
    keys: Keys,
    sessions: sessionmaker[Session],
    runs: list[RunProgress],
    *,
    stop: threading.Event | None = None,
    on_progress: Callable[[], None] | None = None,
    poll: float | None = None,
) -> bool:
    """Copy progress and finish each run when it is drained (or past its deadline); returns
    False if `stop` was set first (the runs go on in Redis; a later coordinator adopts them).

    Every run is looked at each `poll` (POLL_SECONDS) seconds, and a run a worker names on
    `events` (its last request acknowledged, or closed by the worker) at once: the end of
    a run is a chain of such steps, and at a poll's delay each they took 1.5 s of a 15 s
    bench run."""
    poll = POLL_SECONDS if poll is None else poll
    wakeup = Wakeup(server, keys.events)
    last_problem = ""
    named: set[str] | None = None  # None: a full look at every run
    next_full = 0.0
    try:
        while not all(r.finished for r in runs):
            if stop is not None and stop.is_set():
                return False
            full = named is None
            if full:
                next_full = time.monotonic() + poll
            try:
                alive = live_workers(server, keys)
                for run in runs:
                    if not run.finished and (full or str(run.run_id) in (named or ())):
                        look_at(server, keys, sessions, run, alive, full)
                last_problem = ""
            except (RedisError, SQLAlchemyError) as exc:
                problem = (
                    f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
                )
                if problem != last_problem:
                    log.warning("waiting for Redis or the database (%s); the runs go on", problem)
                last_problem = problem
            if on_progress is not None:
                on_progress()
            if not all(r.finished for r in runs):
                named = wakeup.wait(max(0.0, next_full - time.monotonic())) or None
                if time.monotonic() >= next_full:
                    named = None
    finally:
        wakeup.close()
    return True


def enqueue_runs(
    settings: Settings, server: redis.Redis, sites_and_runs: list[tuple[SiteConfig, int]]
) -> list[RunProgress]:
    """Push the runs into Redis for the workers (the first half of `crawl --distributed`
    and of a distributed `schedule` job; `watch_runs` is the second)."""
    keys = Keys(settings.crawl.redis_key_prefix)
    timeout = settings.scheduler.crawl_timeout_minutes * 60
    runs = []
    for site, run_id in sites_and_runs:
        count = enqueue_run(server, keys, site, run_id, timeout)
        runs.append(RunProgress(run_id, count, time.time() + timeout))
        log.info("%s: run %d queued in Redis (%d start requests)", site.name, run_id, count)
    if runs:
        server.publish(keys.wake, "runs")
    return runs


def adopt_runs(settings: Settings, server: redis.Redis, sites: Iterable[str]) -> list[RunProgress]:
    """Runs left in Redis by a coordinator that stopped (for the named sites)."""
    keys = Keys(settings.crawl.redis_key_prefix)
    wanted = set(sites)
    out = []
    for run_id, value in server.hgetall(keys.runs).items():
        info: dict[str, Any] = json.loads(value)
        if info["site"] in wanted:
            progress = RunProgress(int(run_id), int(info["starts"]), float(info["deadline"]))
            if info.get("closing"):
                progress.closing_since = time.time()
            out.append(progress)
    return out


def stop_runs(
    server: redis.Redis, keys: Keys, sessions: sessionmaker[Session], runs: list[RunProgress]
) -> None:
    """End the runs now (Ctrl-C on `crawl --distributed`): interrupted, their queues gone."""
    for run in runs:
        if not run.finished:
            server.delete(keys.run(run.run_id).queue)
            finish(server, keys, sessions, run, RunStatus.INTERRUPTED, "stopped before the end")


def crawl_distributed(
    names: list[str] | None,
    *,
    settings: Settings,
    on_progress: Callable[[list[Any]], None] | None = None,
    notice: Callable[[str], None] = log.warning,
) -> list[Any]:
    """`crawl --distributed`: new runs for the sites, queued in Redis; wait for the workers
    to finish them; the finished runs (RunView). Ctrl-C ends them as interrupted."""
    from archive.alerts import judge_run
    from archive.db import check_schema, make_engine, make_sessionmaker
    from crawler.runner import load_runs, select_sites, start_runs

    sites = select_sites(settings, names)
    server = connect(settings.redis_url)
    keys = Keys(settings.crawl.redis_key_prefix)
    try:
        server.ping()
    except RedisError as exc:
        raise RedisUnavailableError(settings.redis_url, exc) from None
    engine = make_engine(settings.database_url, writer=True)
    try:
        check_schema(engine)
        sessions = make_sessionmaker(engine)
        run_ids = start_runs(sessions, sites, distributed=True)
        pairs = list(zip(sites, run_ids, strict=True))
        if not live_workers(server, keys):
            notice("no worker is running: start `ufarchive worker` (the runs wait in Redis)")
        runs = enqueue_runs(settings, server, pairs)

        def progress() -> None:
            if on_progress is not None:
                on_progress(load_runs(sessions, run_ids))

        try:
            watch_runs(server, keys, sessions, runs, on_progress=progress)
        except KeyboardInterrupt:
            stop_runs(server, keys, sessions, runs)
            raise
        with sessions() as session, session.begin():
            for run_id in run_ids:  # alerts follow every run, as after a local crawl
                judge_run(session, run_id, settings.scheduler)
        return load_runs(sessions, run_ids)
    finally:
        engine.dispose()


class RedisUnavailableError(UfarchiveError):
    def __init__(self, url: str, exc: Exception) -> None:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        super().__init__(f"Redis at {url} unreachable: {first} (set UFARCHIVE_REDIS_URL)")


def check_host_worker(settings: Settings) -> str | None:
    """The id of a live worker on this host (`ufarchive worker --check`), or None."""
    keys = Keys(settings.crawl.redis_key_prefix)
    try:
        names = live_workers(connect(settings.redis_url, patient=False), keys)
    except RedisError as exc:
        raise RedisUnavailableError(settings.redis_url, exc) from None
    host = socket.gethostname()
    return next((n for n in names if n.split(":")[0] == host), None)
