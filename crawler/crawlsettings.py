"""Our settings (`config/settings.yaml`) -> Scrapy settings, in one place.

Scrapy's defaults that an archive crawler must not keep are overridden here with the
reason beside each.
"""

from __future__ import annotations

from typing import Any

from archive.settings import Settings

EXTRA_RETRY_CODES = [429, 503]


def scrapy_settings(settings: Settings, log_level: str = "INFO") -> dict[str, Any]:
    crawl = settings.crawl
    return {
        "BOT_NAME": "ufarchive",
        "SPIDER_MODULES": ["crawler.spider"],
        "NEWSPIDER_MODULE": "crawler.spider",
        "USER_AGENT": crawl.user_agent,
        "ROBOTSTXT_OBEY": crawl.obey_robots_txt,
        "CONCURRENT_REQUESTS": crawl.concurrent_requests,
        "CONCURRENT_REQUESTS_PER_DOMAIN": crawl.concurrent_requests_per_domain,
        "DOWNLOAD_DELAY": crawl.download_delay_seconds,
        "AUTOTHROTTLE_ENABLED": crawl.autothrottle,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": crawl.autothrottle_target_concurrency,
        "AUTOTHROTTLE_START_DELAY": max(crawl.download_delay_seconds, 0.5)
        if crawl.autothrottle
        else 0,
        "AUTOTHROTTLE_MAX_DELAY": 60.0,
        "DOWNLOAD_TIMEOUT": crawl.download_timeout_seconds,
        "RETRY_ENABLED": crawl.retry_times > 0,
        "RETRY_TIMES": crawl.retry_times,
        "RETRY_HTTP_CODES": [500, 502, 503, 504, 522, 524, 408, 429],
        "UFARCHIVE_RETRY_BACKOFF_SECONDS": crawl.retry_backoff_seconds,
        "UFARCHIVE_RETRY_AFTER_MAX_SECONDS": crawl.retry_after_max_seconds,
        "DOWNLOADER_MIDDLEWARES": {
            # every request, redirects included, stays inside its site (before Scrapy's
            # OffsiteMiddleware at 50, which lets dont_filter requests through)
            "crawler.boundary.SiteBoundaryMiddleware": 40,
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "crawler.middlewares.BackoffRetryMiddleware": 550,
            "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
            "crawler.middlewares.SharedRobotsTxtMiddleware": 100,
            # its process_exception runs before the retry's (higher runs first)
            "crawler.boundary.AddressRefusalMiddleware": 560,
            # last before the download: a quick check's answer instead of one (crawler.checks)
            "crawler.middlewares.PrefetchedMiddleware": 950,
            "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
            "crawler.middlewares.QuickMetaRefreshMiddleware": 580,
        },
        # name lookups that lead to unlisted non-public addresses fail (crawler.resolver)
        "TWISTED_DNS_RESOLVER": "crawler.resolver.GuardedResolver",
        "ITEM_PIPELINES": {"crawler.pipelines.ArchivePipeline": 300},
        # Scrapy 2.19 starts CONCURRENT_ITEMS (100) asyncio tasks for every callback's
        # output; ours yield one item or a page of links, and the pipeline is serial, so
        # 100 tasks a page were pure overhead (bench/crawl.py: a third of the CPU time).
        "CONCURRENT_ITEMS": 4,
        # Scrapy looks for `return value` in generator callbacks by parsing their source
        # with ast, meant once per callback; its cache holds bound methods weakly, and a
        # bound method is a new object on every request, so it parsed parse_article's source
        # for every response (0.8 ms each: a revisit run's largest cost). Our callbacks
        # are tested instead.
        "WARN_ON_GENERATOR_RETURN_VALUE": False,
        # Oversized pages end as a recorded error, never a memory blow-up.
        "DOWNLOAD_MAXSIZE": crawl.max_response_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "REDIRECT_MAX_TIMES": crawl.redirect_max_times,
        "DEPTH_LIMIT": crawl.depth_limit,
        # An archive crawler is long-running and unattended: Scrapy 2.19's remote-control
        # server (runs Python sent to it) and the telnet console stay off.
        "REMOTE_CONTROL_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        # Cookies are not needed for public news pages and make refetches stateful.
        "COOKIES_ENABLED": False,
        "LOG_LEVEL": log_level,
        "STATS_DUMP": True,
    }
