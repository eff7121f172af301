"""`ufarchive worker`: a Scrapy process that crawls the distributed runs it finds in Redis.

Each run in Redis (crawler.distributed) gets a crawler of its own in the worker: the same
NewsSpider callbacks, extraction and store path as `crawl`, with

- the scheduler and duplicate filter of scrapy-redis (`scrapy_redis.scheduler.Scheduler`,
  `PriorityQueue`, `RFPDupeFilter`), adapted in two places where scrapy-redis 0.9.1 does
  not fit, both by subclassing: (1) its keys are per spider *name* (`news:requests`), so
  every site's requests would share one queue and no run could tell when its own queue
  is drained -- `open()` points the queue and the filter at the run's keys; (2) its
  `pop()` removes a request outright, so the requests a killed worker had taken would be
  lost -- `ReliableQueue.pop()` moves it into the run's in-flight hash in the same Redis
  step, and the scheduler acknowledges it only when Scrapy's engine has finished with it
  (the response's links are in the queue) and the pipeline has committed what it stored.
  Nothing else is changed: with Scrapy 2.19 the rest of scrapy-redis works as it is;
- counters and errors that go to Redis (the coordinator writes the run row);
- politeness through Redis for all workers together (crawler.politeness);
- WARC files of its own: host, process and site in every file name.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import RedisError
from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.exceptions import DontCloseSpider
from scrapy.http import Response
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from scrapy.utils.reactor import CallLaterOnce
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from twisted.internet import task, threads
from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.python.failure import Failure

from archive.db import check_schema, make_engine, make_sessionmaker
from archive.models import RunStatus, Site, utcnow
from archive.revisit import revisit_budget
from archive.settings import Settings, load_settings
from archive.store import DERIVE_CHUNK, due_articles, known_articles, update_derived
from archive.warc import WarcFileWriter
from crawler import distributed
from crawler.distributed import COUNTER_FIELDS, KEY_TTL_SECONDS, Keys, RunKeys
from crawler.pipelines import BATCH_SIZE, ArchivePipeline, Pending, deadlock_retrying
from crawler.runstate import RunState
from crawler.sites import load_site_file
from crawler.spider import NewsSpider

log = logging.getLogger("ufarchive.worker")

TICK_SECONDS = 0.5  # heartbeat, new runs, dead workers' requests
DERIVE_SECONDS = 2.0  # the derive pass over all runs (SharedDeriver)
ACK_SECONDS = 0.2  # acknowledgements, and waking an idle engine when work arrived
COMMIT_SECONDS = 2.0  # a run's pages commit at least this often (WorkerPipeline)
TOKEN_META = "ufarchive_token"
CLAIM_META = "ufarchive_claim"  # a new article's canonical URL, claimed where it is queued


# --- the run's state in a worker -----------------------------------------------------------


@dataclass
class SharedRunState(RunState):
    """A run's state in one worker: counters are *added* to the run's hash in Redis and
    errors pushed to its list, where the coordinator collects them."""

    server: Any = None
    keys: RunKeys | None = None
    sent: dict[str, int] = field(default_factory=dict)
    # The pipeline's commits begun and finished, and whether pages wait for the next one:
    # a page of a request let go of when `commits_begun` was n is stored once `commits` is
    # n + 1 if pages waited then, n if not (crawler.worker.RunQueueScheduler.acknowledge)
    commits_begun: int = 0
    commits: int = 0
    pages_waiting: bool = False
    worker: str = ""
    deployment: Keys | None = None  # the keys of the deployment (keys: the run's)

    def error(self, url: str | None, kind: str, message: str) -> None:
        log.warning("%s: %s: %s", url or self.site.name, kind, message)
        assert self.keys is not None
        self.server.rpush(self.keys.errors, json.dumps([url, kind, message[:4000]]))

    def add(self, name: str, count: int = 1) -> None:
        assert self.keys is not None
        self.server.hincrby(self.keys.counters, name, count)

    def flush(self, stats: dict[str, Any]) -> None:
        self.read_stats(stats)
        now = {name: int(getattr(self.counters, name, 0)) for name in COUNTER_FIELDS}
        now["unstored"] = self.unstored
        now.pop("start_ok")  # added as it happens (note_start)
        now |= {f"status:{k}": v for k, v in self.counters.responses_by_status.items()}
        # our own stats (archive.alerts reads them off the run): numbers add up, texts are set
        ours = {k: v for k, v in stats.items() if k.startswith("ufarchive/")}
        now |= {f"stat:{k}": int(v) for k, v in ours.items() if isinstance(v, int | float)}
        texts = {k: str(v) for k, v in ours.items() if isinstance(v, str)}
        deltas = {k: v - self.sent.get(k, 0) for k, v in now.items() if v != self.sent.get(k, 0)}
        if not deltas and not texts and not self.counters.unreachable:
            return
        assert self.keys is not None
        counted = [(k, v) for k, v in deltas.items() if not k.startswith("stat:")]
        stated = [(k.removeprefix("stat:"), v) for k, v in deltas.items() if k.startswith("stat:")]
        unreachable = 1 if self.counters.unreachable else 0
        args: list[Any] = [KEY_TTL_SECONDS, unreachable, len(counted), len(stated)]
        for name, value in [*counted, *stated, *texts.items()]:
            args += (name, value)
        keys = [self.keys.counters, self.keys.stats]
        distributed.run_script(self.server, distributed.COUNTERS_SCRIPT, keys, args)
        self.sent = now

    def finish(self, status: RunStatus, message: str | None, stats: dict[str, Any]) -> None:
        """This worker is done with the run (the coordinator judges the run itself)."""
        if self.finished:
            return
        try:
            self.flush(stats)
            assert self.keys is not None
            self.server.sadd(self.keys.closed, self.worker)
            self.server.expire(self.keys.closed, KEY_TTL_SECONDS)
            assert self.deployment is not None  # the coordinator may finish the run now:
            self.server.publish(self.deployment.events, str(self.run_id))
        except RedisError:
            log.exception("run %d: last counters not sent", self.run_id)
        self.finished = True
        self.warc.close()
        self.engine.dispose()


class SharedSet:
    """The spider's set of scheduled article URLs, kept in Redis for all workers."""

    def __init__(self, server: redis.Redis, key: str) -> None:
        self.server, self.key = server, key

    def __contains__(self, value: object) -> bool:
        return bool(self.server.sismember(self.key, str(value)))

    def add(self, value: str) -> None:
        self.server.sadd(self.key, value)


# --- the spider -----------------------------------------------------------------------------


class WorkerSpider(NewsSpider):
    """NewsSpider on a distributed run: start requests come from the coordinator, the page
    budget and the set of scheduled articles are the run's, in Redis."""

    run: SharedRunState

    def __init__(
        self,
        site: str | None = None,
        run_id: str | int | None = None,
        worker_id: str = "",
        deriver: SharedDeriver | None = None,
        **kwargs: Any,
    ):
        super().__init__(site=site, run_id=run_id, trigger="worker", **kwargs)
        self.worker_id = worker_id
        self.deriver = deriver  # the worker's (its pipeline derives through it)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> WorkerSpider:
        spider: WorkerSpider = super().from_crawler(crawler, *args, **kwargs)  # type: ignore[assignment]
        assert spider.run.keys is not None
        spider.scheduled = SharedSet(spider.run.server, spider.run.keys.scheduled)  # type: ignore[assignment]
        crawler.signals.connect(spider.on_idle, signal=signals.spider_idle)
        return spider

    def open_run(self) -> SharedRunState:
        settings = load_settings()
        site = load_site_file(settings.sites_dir / f"{self.site_name}.yaml")
        assert self.given_run_id is not None
        engine = make_engine(settings.database_url, writer=True)
        check_schema(engine)
        sessions = make_sessionmaker(engine)
        server = distributed.connect(settings.redis_url)
        keys = Keys(settings.crawl.redis_key_prefix).run(self.given_run_id)
        policy = site.revisit_policy(settings.revisit)
        # the first worker on the run queues its revisits (the others' would be the same)
        revisits = bool(server.set(keys.due, self.worker_id, nx=True, ex=KEY_TTL_SECONDS))
        with sessions() as session:
            site_id = session.scalars(select(Site.id).where(Site.name == site.name)).one()
            known = known_articles(session, site_id)
            limit = revisit_budget(policy, site.max_pages)
            due = due_articles(session, site_id, utcnow(), limit) if revisits else []
        warc = WarcFileWriter(
            settings.data_dir, settings.crawl.warc_max_bytes, prefix=f"ufarchive-{site.name}"
        )
        return SharedRunState(
            settings, site, site_id, self.given_run_id, engine, sessions, warc, known,
            policy=policy, due=due, server=server, keys=keys, worker=self.worker_id,
            deployment=Keys(settings.crawl.redis_key_prefix),
        )  # fmt: skip

    async def start(self) -> AsyncIterator[Request]:
        """The coordinator has queued the start requests; the revisits (if this worker
        took them) go into the run's queue like any request."""
        for request in self.revisit_requests():
            yield request

    def take_budget(self) -> bool:
        """One page of the run's budget (`max_pages`), shared by all workers: taken in one
        atomic step (INCR), not read, compared and bumped (three round trips a request, and
        two workers could both take the last page)."""
        assert self.run.keys is not None
        if int(self.run.server.incr(self.run.keys.budget)) > self.site.max_pages:
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("ufarchive/max_pages_reached")
            return False
        return True

    def claim(self, canonical: str, meta: dict[str, Any]) -> bool:
        """NewsSpider's claim on the run's shared set and budget, made by the run's scheduler
        where it queues the request (`ENQUEUE_SCRIPT`, with a listing page's other links in
        one round trip): a claim of its own was a round trip an article."""
        meta[CLAIM_META] = canonical
        return True

    def note_start(self, response: Response) -> None:
        if response.meta.get("kind") == "start" and response.status == 200:
            self.run.add("start_ok")

    def on_idle(self, spider: Spider) -> None:
        if spider is not self:
            return
        assert self.run.deployment is not None
        try:
            active = distributed.is_active(self.run.server, self.run.deployment, self.run.run_id)
        except RedisError:
            active = True  # Redis is away: keep the run open and ask again
        if active:
            raise DontCloseSpider


# --- the pipeline and the scheduler ---------------------------------------------------------


class SharedDeriver:
    """One derive pass for all of a worker's runs, every DERIVE_SECONDS, in a thread. A
    worker holds many runs at once, each committing a batch every half second: deriving
    each batch in its own transaction paid the clusters' and the index's fixed costs (the
    LSH log and tiers read again, bench/distributed.py: 1,146 batches of 1.7 articles for
    2,000) for one or two articles, 44 % of the worker's time. And a pass run in the
    reactor held up every run's crawling while it waited for PostgreSQL (0.6 s every 2 s,
    a quarter of the worker's time): in a thread, the reactor goes on.

    The ids wait here, after their articles committed; a worker killed meanwhile leaves
    them to the run's end (any worker closing the run derives what its site still lacks)
    or to the site's next run."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url, writer=True)
        self.sessions = make_sessionmaker(self.engine)
        self.waiting: list[int] = []
        self.busy = threading.Lock()  # held by a pass
        self.order = DeferredLock()  # passes one after the other, in the order asked for
        self.timer = task.LoopingCall(self.pass_in_thread)

    def start(self) -> None:
        self.timer.start(DERIVE_SECONDS, now=False)

    def writer_busy(self) -> bool:
        return False

    def send(self, article_ids: list[int]) -> bool:
        self.waiting.extend(article_ids)
        return True

    def take(self) -> list[int]:
        """The waiting ids, taken in the reactor's thread (where `send` adds to them)."""
        ids, self.waiting = list(dict.fromkeys(self.waiting)), []
        return ids

    def pass_in_thread(self) -> Deferred[bool] | None:
        ids = self.take()
        return self.order.run(threads.deferToThread, self.derive, ids) if ids else None

    def finish_in_thread(self) -> Deferred[bool]:
        """A run ends: after the passes asked for before, derive what waits (its own ids
        among them), so that the run's catch-up finds only what truly lacks. In a thread:
        in the reactor, this wait held up every other run of the worker (1.1 s at the end
        of a bench run, while the other runs' ends waited behind it)."""
        ids = self.take()
        return self.order.run(threads.deferToThread, self.derive, ids)

    def finish(self, timeout: float = 600.0) -> bool:
        """(Deriver's, for a caller outside the reactor: derive what waits, now.)"""
        return self.derive(self.take())

    def derive(self, ids: list[int]) -> bool:
        """Derive these ids (a transaction per DERIVE_CHUNK): True if all were done;
        those of a failed chunk and after are left to the run's end."""
        with self.busy:
            if not ids:
                return True
            try:
                for start in range(0, len(ids), DERIVE_CHUNK):

                    def derive(chunk: list[int] = ids[start : start + DERIVE_CHUNK]) -> None:
                        with self.sessions() as session, session.begin():
                            update_derived(session, chunk)

                    # (another worker's pass may deadlock with this one)
                    deadlock_retrying(derive, "deriving stored articles")
            except SQLAlchemyError as exc:  # the run's end (or the next run) derives them
                log.error("could not derive %d stored articles: %s", len(ids), exc)
                return False
            except Exception:  # a bug: the passes go on; the run's end derives these
                log.exception("could not derive %d stored articles", len(ids))
                return False
        return True

    def close(self) -> None:
        if self.timer.running:
            self.timer.stop()
        self.derive(self.take())
        self.engine.dispose()


#: Pages a run holds while one of its batches is being stored; past this its engine takes
#: no new requests until the batch is done (an archive that is slow or away holds the
#: crawl back, rather than the worker's memory filling with pages).
MAX_WAITING = BATCH_SIZE * 4

#: Sent by WorkerPipeline when a batch of a run has been stored: its scheduler may
#: acknowledge the requests the batch stood for (sooner than its next tick).
batch_stored = object()


class WorkerPipeline(ArchivePipeline):
    """ArchivePipeline that stores its batches in a thread and counts its commits, so the
    scheduler knows when a page it let go of is stored (its request may then leave the
    in-flight hash), and derives through the worker's SharedDeriver.

    It commits a run's pages every COMMIT_SECONDS, not every half second: a worker holds
    many runs (a site each), and at half a second 20 runs made 40 commits of two pages a
    second, each with its WARC sync and five statements. A run whose engine has nothing
    left to do (its queue empty, nothing in flight) commits at once, when Scrapy says it
    is idle, so that the end of a run, which waits for these commits, is not held back.

    The batch is stored in a thread (`store_pages`: the WARC sync and the transaction),
    one batch of a run at a time; its outcomes are counted back in the reactor. Stored in
    the reactor's thread, the commits of 20 runs held every run's responses up while
    PostgreSQL and the disk answered (py-spy: 11 % of the reactor's time; a response
    waited ~55 ms past its 100 ms of latency before it was read, bench/distributed.py)."""

    derive_process = False  # a worker is the unit that scales (crawler.pipelines)

    def open_spider(self) -> None:
        super().open_spider()
        self.last_commit = time.monotonic()
        spider = self.crawler.spider
        self.shared: SharedDeriver | None = None
        if isinstance(spider, WorkerSpider):
            self.deriver = self.shared = spider.deriver
        self.storing: Deferred[Any] | None = None  # the batch being stored in a thread
        self.again = False  # a commit was asked for meanwhile: it comes right after
        self.paused = False  # the run's engine, while MAX_WAITING pages wait
        self.crawler.signals.connect(self.on_idle, signal=signals.spider_idle)

    def on_idle(self, spider: Spider) -> None:
        """Scrapy's engine has nothing in flight and nothing queued for the run: commit now
        (the run may be drained; the scheduler acknowledges right after)."""
        if spider is self.crawler.spider and self.pending:
            self.commit(wait=True)

    async def close_spider(self) -> None:
        """ArchivePipeline's end of the run, with the wait for the last batches, the
        worker's derive pass and the site's catch-up, so the worker's other runs go on
        meanwhile."""
        if self.shared is None:
            await super().close_spider()
            return
        self.store_the_rest()  # (the last batch starts in its thread; stored_all waits)
        done = self.stored_all()
        done.addCallback(lambda _: self.shared_finish())
        done.addCallback(lambda _: self.catch_up())
        done.addCallback(lambda _: self.finish_revisits())
        await maybe_deferred_to_future(done)

    def shared_finish(self) -> Deferred[bool]:
        self.deriver = None
        assert self.shared is not None
        return self.shared.finish_in_thread()

    def stored_all(self) -> Deferred[None]:
        """Fires once no page waits and no batch is being stored."""
        self.commit(wait=True)
        storing = self.storing
        if storing is None:
            return succeed(None)
        done: Deferred[None] = Deferred()

        def next_turn(_: Any) -> None:
            self.stored_all().chainDeferred(done)

        storing.addCallback(next_turn)
        return done

    def catch_up(self) -> Deferred[None] | None:
        """Derive what the site still lacks, in a thread, if no other live worker on the run
        is still deriving (crawler.distributed.last_to_derive); Redis away: derive."""
        run = self.run
        assert isinstance(run, SharedRunState) and run.deployment is not None
        try:
            if not distributed.last_to_derive(run.server, run.deployment, run.run_id, run.worker):
                return None
        except RedisError:
            pass
        return threads.deferToThread(self.derive_leftovers)

    def enqueue(self, pending: Pending) -> None:
        run = self.run
        if isinstance(run, SharedRunState):
            run.pages_waiting = True  # (until a commit takes them)
        super().enqueue(pending)
        engine = self.crawler.engine
        if self.storing is not None and len(self.pending) >= MAX_WAITING and engine is not None:
            if not self.paused:
                log.warning(
                    "%s: %d pages wait for the archive; no new requests until they are stored",
                    run.site.name, len(self.pending),
                )  # fmt: skip
            engine.pause()
            self.paused = True

    def commit(self, wait: bool = False) -> None:
        if self.storing is not None:  # one batch of a run at a time: the next one after it
            self.again = self.again or wait or len(self.pending) >= BATCH_SIZE
            return
        if (
            not wait
            and self.pending
            and len(self.pending) < BATCH_SIZE
            and time.monotonic() - self.last_commit < COMMIT_SECONDS
        ):
            return  # (not counted: the pages released so far wait for a commit)
        run = self.run
        shared = run if isinstance(run, SharedRunState) else None
        if not self.pending or self.shared is None:
            # (counted with nothing pending too: what the engine let go of is all stored, so
            # a listing page's request is acknowledged at the next tick, not after
            # COMMIT_SECONDS)
            if self.pending:
                self.last_commit = time.monotonic()
            super().commit(wait)
            if shared is not None:
                shared.commits_begun += 1
                shared.commits += 1
                shared.pages_waiting = False
            return
        self.last_commit = time.monotonic()
        batch, self.pending = self.pending, []
        if shared is not None:
            shared.commits_begun += 1
            shared.pages_waiting = False
        self.again = False
        storing = threads.deferToThread(self.store_pages, batch)
        storing.addCallbacks(self.after_store, self.batch_failed, errbackArgs=(batch,))
        storing.addBoth(self.batch_done)
        self.storing = storing

    def batch_failed(self, failure: Failure, batch: list[Pending]) -> None:
        exc = failure.value
        self.batch_unstored(batch, exc if isinstance(exc, Exception) else RuntimeError(exc))

    def batch_done(self, result: Any) -> None:
        if isinstance(result, Failure):  # after_store or batch_failed went wrong: a bug
            log.error("a stored batch was not counted", exc_info=result.value)
        self.storing = None
        run = self.run
        if isinstance(run, SharedRunState):
            run.commits += 1
        engine = self.crawler.engine
        if self.paused and engine is not None:
            self.paused = False
            engine.unpause()  # (the scheduler wakes it, on batch_stored below)
        if self.again or len(self.pending) >= BATCH_SIZE:
            self.commit(wait=True)
        self.crawler.signals.send_catch_log(batch_stored)


class ReliableQueue(PriorityQueue):  # type: ignore[misc]
    """scrapy-redis's priority queue whose pop() holds the request for this worker."""

    def __init__(self, server: redis.Redis, spider: WorkerSpider, run: RunKeys, worker: str):
        super().__init__(server, spider, run.queue)
        self.run, self.worker = run, worker
        self.method_names: dict[Any, str] = {}  # a spider method's function -> its name

    def _encode_request(self, request: Request) -> bytes:
        """scrapy-redis's, with the request's callback and errback given to Request.to_dict
        by name: given the method, it looks for its name among all the spider's members
        (inspect.getmembers) for every request, 1 % of a worker's time."""
        methods = request.callback, request.errback
        request.callback, request.errback = (self.method_name(m) for m in methods)
        try:
            return super()._encode_request(request)  # type: ignore[no-any-return]
        finally:
            request.callback, request.errback = methods

    def method_name(self, method: Any) -> Any:
        """The name of a method of the spider (what to_dict would find), else `method`."""
        if getattr(method, "__self__", None) is not self.spider:
            return method  # (None, or not a method of the spider's: as to_dict has it)
        func = method.__func__
        name = self.method_names.get(func)
        if name is None:
            name = func.__name__
            if getattr(getattr(self.spider, name, None), "__func__", None) is not func:
                return method  # (under another name: to_dict looks for it)
            self.method_names[func] = name
        return name

    def pop(self, timeout: int = 0) -> Request | None:
        run = self.run
        found = distributed.run_script(
            self.server, distributed.POP_SCRIPT,
            [run.queue, run.inflight, run.counter, run.workers], [self.worker],
        )  # fmt: skip
        if not found:
            return None
        token, data = found
        request: Request = self._decode_request(data)
        request.meta[TOKEN_META] = token.decode()
        return request


class RunQueueScheduler(Scheduler):  # type: ignore[misc]
    """scrapy-redis's scheduler on one run's keys, acknowledging what it handed out."""

    crawler: Crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunQueueScheduler:
        settings = crawler.settings
        server = distributed.connect(settings.get("UFARCHIVE_REDIS_URL"))
        scheduler = cls(server=server, persist=True)  # the coordinator drops the run's keys
        scheduler.stats = crawler.stats
        scheduler.crawler = crawler
        scheduler.worker = settings.get("UFARCHIVE_WORKER_ID")
        return scheduler

    def open(self, spider: WorkerSpider) -> None:
        self.spider = spider
        assert spider.run.keys is not None
        self.run: RunKeys = spider.run.keys
        self.queue = ReliableQueue(self.server, spider, self.run, self.worker)
        self.df = RFPDupeFilter(self.server, key=self.run.seen)
        self.held: dict[Request, str] = {}  # handed to the engine, not yet acknowledged
        self.released: list[tuple[str, int]] = []  # (token, acknowledged once commits > this)
        self.timer = task.LoopingCall(self.acknowledge)
        self.timer.start(ACK_SECONDS, now=False)
        self.soon = CallLaterOnce(self.acknowledge)
        self.outbox: list[tuple[Request, list[Any]]] = []  # (request, ENQUEUE_SCRIPT's args)
        self.send_soon = CallLaterOnce(self.send_outbox)
        self.crawler.signals.connect(self.on_idle, signal=signals.spider_idle)
        self.crawler.signals.connect(self.soon.schedule, signal=batch_stored)

    def on_idle(self, spider: Spider) -> None:
        """The engine has nothing left: acknowledge now, not at the next tick (the run may
        be drained), once the other handlers (the pipeline's commit) have run."""
        if spider is self.spider and (self.held or self.released):
            self.soon.schedule()

    def enqueue_request(self, request: Request) -> bool:
        """Into the outbox: Scrapy hands over a listing page's links one by one in a turn of
        the reactor, and at its end (`send_outbox`) they go to Redis in one round trip, each
        by `ENQUEUE_SCRIPT`: the article's claim (WorkerSpider.claim), scrapy-redis's
        duplicate filter and its queue push. A round trip a link, and one more for its
        claim, were half of what a worker's reactor waited on Redis (bench/distributed.py:
        16-21 % of its time, all calls together). Scrapy is told that every request was
        queued; those the script turns down are logged and counted when they are sent
        (Scrapy's request_dropped signal, which nothing here listens to, is not sent for
        them). (scrapy-redis 0.9.1's own enqueue also passes `spider=` to the stats,
        deprecated in Scrapy 2.19.)"""
        fingerprint = "" if request.dont_filter else self.df.request_fingerprint(request)
        data = self.queue._encode_request(request)
        claim = request.meta.get(CLAIM_META, "")
        args = [fingerprint, -request.priority, data, claim, self.spider.site.max_pages]
        self.outbox.append((request, args))
        self.send_soon.schedule()
        return True

    def send_outbox(self) -> bool:
        """Queue the requests in the outbox in Redis; False (they stay) if Redis is away."""
        if not self.outbox:
            return True
        run = self.run
        keys = [run.seen, run.queue, run.scheduled, run.budget]
        try:
            results = distributed.run_scripts(
                self.server, distributed.ENQUEUE_SCRIPT, [(keys, a) for _, a in self.outbox]
            )
        except RedisError:
            log.warning("Redis is away; %d requests wait to be queued", len(self.outbox))
            return False
        sent, self.outbox = self.outbox, []
        stats = self.stats
        for (request, _), result in zip(sent, results, strict=True):
            if result == 1:
                if stats:
                    stats.inc_value("scheduler/enqueued/redis")
            elif result == 0:
                self.df.log(request, self.spider)
            elif result == -1 and stats:
                stats.inc_value("ufarchive/max_pages_reached")
        return True

    def next_request(self) -> Request | None:
        self.send_outbox()  # (what waits there may come first)
        try:
            request: Request | None = self.queue.pop()
        except RedisError:
            log.warning("Redis is away; no request taken")
            return None
        if request is not None:
            self.held[request] = request.meta[TOKEN_META]
            if self.stats:
                self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def __len__(self) -> int:
        return len(self.outbox) + len(self.queue)

    def has_pending_requests(self) -> bool:
        try:
            return len(self) > 0
        except RedisError:
            return False

    def in_progress(self) -> set[Request]:
        # Scrapy has no public signal for "the engine is done with a request (its callback's
        # output handled)"; the engine's slot keeps exactly that set.
        slot = getattr(self.crawler.engine, "_slot", None)
        return getattr(slot, "inprogress", set()) if slot is not None else set()

    def acknowledge(self) -> None:
        """Let go of the requests the engine has finished with once their pages are stored
        (the commit that took them has finished, or the next one if they still wait); then
        wake the engine if the queue has work (when idle, Scrapy's engine looks at its
        scheduler only every 5 s). The outbox goes first: a listing page let go of may
        have links there, and once let go of it is not fetched again if the worker dies."""
        if not self.send_outbox():
            return
        try:
            busy = self.in_progress()
            run = self.spider.run
            # the pages of what is let go of now wait for the next commit, or are in the one
            # being stored (or stored already)
            at = run.commits_begun if run.pages_waiting else run.commits_begun - 1
            commits = run.commits
            for request in [r for r in self.held if r not in busy]:
                self.released.append((self.held.pop(request), at))
            done = [token for token, at in self.released if commits > at]
            if done:
                self.spider.flush()  # the counters first: the run may end with these acks
                assert run.deployment is not None
                distributed.acknowledge(self.server, run.deployment, run.run_id, done)
                self.released = [(t, at) for t, at in self.released if commits <= at]
            engine = self.crawler.engine
            if engine is not None and not engine.needs_backout() and len(self.queue):
                slot = getattr(engine, "_slot", None)
                if slot is not None:
                    slot.nextcall.schedule()
        except RedisError:
            log.warning("Redis is away; acknowledgements wait")

    def close(self, reason: str) -> None:
        """Hand back what this worker still holds (a stop before the end): another worker
        takes it up at once instead of after the dead-worker timeout."""
        if self.timer.running:
            self.timer.stop()
        self.soon.cancel()
        self.send_soon.cancel()
        self.send_outbox()  # (left unsent, its links come again with their page's request)
        tokens = list(self.held.values()) + [token for token, _ in self.released]
        try:
            distributed.requeue(self.server, self.run, tokens)
        except RedisError:
            log.warning(
                "Redis is away; %d requests go back when this worker times out", len(tokens)
            )


# --- the worker process -----------------------------------------------------------------------


def worker_scrapy_settings(settings: Settings, worker_id: str) -> dict[str, Any]:
    from crawler.crawlsettings import scrapy_settings

    values = scrapy_settings(settings, log_level=settings.logging.level)
    crawl = settings.crawl
    values.update(
        SCHEDULER="crawler.worker.RunQueueScheduler",
        ITEM_PIPELINES={"crawler.worker.WorkerPipeline": 300},
        UFARCHIVE_REDIS_URL=settings.redis_url,
        UFARCHIVE_REDIS_PREFIX=crawl.redis_key_prefix,
        UFARCHIVE_WORKER_ID=worker_id,
        UFARCHIVE_DOMAIN_CONCURRENCY=crawl.concurrent_requests_per_domain,
        UFARCHIVE_DOMAIN_DELAY=crawl.download_delay_seconds,
        # the delay holds across workers (crawler.politeness); a local one would add to it
        DOWNLOAD_DELAY=0,
        DOWNLOADER_MIDDLEWARES={
            **values["DOWNLOADER_MIDDLEWARES"],
            "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
            "crawler.middlewares.SharedRobotsTxtMiddleware": None,
            "crawler.politeness.RunRobotsTxtMiddleware": 100,
            # last before the download: the lease covers the request on the wire only
            "crawler.politeness.DomainLeaseMiddleware": 990,
        },
    )
    return values


class WorkerProcess(CrawlerProcess):
    """Scrapy's process, told when a shutdown signal arrives (no new runs then)."""

    stopping = False

    def _signal_shutdown(self, signum: int, frame: Any) -> None:
        self.stopping = True
        super()._signal_shutdown(signum, frame)


class Worker:
    """Opens a crawler for every run in Redis; says it is alive; requeues dead workers'
    requests."""

    def __init__(self, settings: Settings, log_file: str | None = None) -> None:
        self.settings = settings
        self.id = distributed.worker_id()
        self.keys = Keys(settings.crawl.redis_key_prefix)
        self.server = distributed.connect(settings.redis_url)
        values = worker_scrapy_settings(settings, self.id)
        self.deriver = SharedDeriver(settings.database_url)
        if log_file:
            values.update(LOG_FILE=log_file, LOG_FILE_APPEND=True)
        values["LOG_INSTALL_ROOT_HANDLER"] = True
        self.process = WorkerProcess(values)
        self.crawling: dict[int, Crawler] = {}
        self.closing: set[int] = set()
        self.retry_at: dict[int, float] = {}  # runs whose crawler failed to open
        self.last_reap = 0.0
        self.trouble = ""
        self.done = threading.Event()

    def heartbeat(self) -> None:
        """Say this process is alive, from a thread of its own: the reactor may be busy for
        seconds (opening a run's crawler), and that must not make the worker look dead."""
        ttl = self.settings.crawl.worker_timeout_seconds
        about = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
        server = distributed.connect(self.settings.redis_url)
        while not self.done.wait(ttl / 4):
            with contextlib.suppress(RedisError):  # the reactor's tick reports Redis trouble
                server.set(self.keys.worker(self.id), about, px=int(ttl * 1000))
        with contextlib.suppress(RedisError):
            server.delete(self.keys.worker(self.id))

    def listen(self) -> None:
        """Look at the runs at once when the coordinator says they arrived or are closing,
        not at the next tick (a thread of its own: a pub/sub read blocks)."""
        from twisted.internet import reactor

        wakeup = distributed.Wakeup(distributed.connect(self.settings.redis_url), self.keys.wake)
        while not self.done.is_set():
            if wakeup.wait(1.0) and reactor.running:
                reactor.callFromThread(self.tick)
        wakeup.close()

    def tick(self) -> None:
        ttl = self.settings.crawl.worker_timeout_seconds
        try:
            runs = distributed.run_infos(self.server, self.keys)
            for run_id, info in runs.items():
                wanted = not self.process.stopping and not info.get("closing")
                if (
                    wanted
                    and run_id not in self.crawling
                    and time.time() >= self.retry_at.get(run_id, 0)
                ):
                    self.open(run_id, info["site"])
            for run_id, crawler in list(self.crawling.items()):
                if run_id not in runs or runs[run_id].get("closing"):
                    self.close(run_id, crawler)
            if time.monotonic() - self.last_reap > min(2.0, ttl / 2):
                self.last_reap = time.monotonic()
                alive = distributed.live_workers(self.server, self.keys)
                for run_id in runs:
                    distributed.requeue_dead(self.server, self.keys, run_id, alive)
            if self.trouble:
                log.info("Redis is back")
            self.trouble = ""
        except RedisError as exc:
            if not self.trouble:
                log.warning("Redis is away (%s); the worker waits", exc)
            self.trouble = str(exc)

    def open(self, run_id: int, site: str) -> None:
        log.info("run %d (%s): joining", run_id, site)
        crawler = self.process.create_crawler(WorkerSpider)
        self.crawling[run_id] = crawler
        deferred = self.process.crawl(
            crawler, site=site, run_id=run_id, worker_id=self.id, deriver=self.deriver
        )

        def done(result: Any) -> None:
            self.crawling.pop(run_id, None)
            self.closing.discard(run_id)
            if result is not None and hasattr(result, "getErrorMessage"):
                log.error(
                    "run %d (%s): could not crawl: %s", run_id, site, result.getErrorMessage()
                )
                self.retry_at[run_id] = time.time() + 30

        deferred.addBoth(done)

    def close(self, run_id: int, crawler: Crawler) -> None:
        """The run is drained (or gone): close its crawler now, not at the engine's next
        idle check, so the coordinator gets the last counters soon."""
        engine = crawler.engine
        if run_id in self.closing or engine is None or engine.spider is None:
            return
        self.closing.add(run_id)
        log.info("run %d: drained, closing", run_id)
        # (through asyncio: the coroutine awaits asyncio futures, which a Deferred made by
        # Deferred.fromCoroutine cannot drive)
        deferred = deferred_from_coro(engine.close_spider_async(reason="finished"))
        deferred.addErrback(
            lambda failure: log.error("run %d: %s", run_id, failure.getErrorMessage())
        )

    def run(self) -> None:
        ttl = self.settings.crawl.worker_timeout_seconds
        self.server.set(self.keys.worker(self.id), "{}", px=int(ttl * 1000))
        beating = threading.Thread(target=self.heartbeat, name="heartbeat", daemon=True)
        beating.start()
        listening = threading.Thread(target=self.listen, name="wakeup", daemon=True)
        listening.start()
        looping = task.LoopingCall(self.tick)
        looping.start(TICK_SECONDS, now=True)
        self.deriver.start()
        try:
            self.process.start(stop_after_crawl=False)
        finally:
            if looping.running:
                looping.stop()
            self.deriver.close()
            self.done.set()
            beating.join(timeout=5)
            listening.join(timeout=5)


def install_reactor(settings: Settings) -> None:
    """Install Scrapy's reactor before the worker starts: its first crawler may come much
    later, and Twisted would otherwise install its default one."""
    from scrapy.settings import Settings as ScrapySettings
    from scrapy.utils.reactor import install_reactor as scrapy_install_reactor

    scrapy_install_reactor(ScrapySettings()["TWISTED_REACTOR"])


def warm_up() -> None:
    """Import what a run's crawler needs now: done when the first run arrives, it blocked
    the reactor for seconds (extraction, dedup, search, Alembic)."""
    from crawler.runner import import_crawl_modules

    import_crawl_modules("crawler.politeness")


def run_worker(settings: Settings, log_file: str | None = None) -> None:
    """The body of `ufarchive worker`: crawl Redis's runs until SIGTERM/SIGINT."""
    install_reactor(settings)  # first: crawler.middlewares imports the reactor
    warm_up()
    gc.freeze()  # the modules out of the collector's sight, as in a crawl process (runner)
    worker = Worker(settings, log_file)
    log.info("worker %s on %s, Redis prefix %r", worker.id, settings.redis_url,
             settings.crawl.redis_key_prefix)  # fmt: skip
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    worker.run()
