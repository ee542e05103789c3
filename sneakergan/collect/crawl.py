"""Run one spider in this process with settings built from a CrawlConfig.

Twisted's reactor starts once per process, so callers that crawl twice (tests) run each crawl in a
subprocess, e.g. through the CLI."""

from __future__ import annotations

import logging
from typing import Any

from sneakergan.collect.config import CrawlConfig
from sneakergan.errors import UserError

# Loggers that print a traceback for every request that failed to connect. The spider records each failure in
# the store (and the command reports them), so below INFO they only bury the one line that matters.
NOISY_LOGGERS = ("scrapy.downloadermiddlewares.robotstxt", "scrapy.downloadermiddlewares.retry",
                 "scrapy.core.scraper")


class CrawlError(UserError):
    """A crawl that ended without fetching anything: the first failure says why."""


def scrapy_settings(cfg: CrawlConfig) -> dict[str, Any]:
    """Scrapy settings for a polite crawl."""
    return {
        "BOT_NAME": "sneakergan",
        "USER_AGENT": cfg.user_agent,
        "ROBOTSTXT_OBEY": cfg.obey_robots,
        "AUTOTHROTTLE_ENABLED": cfg.autothrottle,
        "AUTOTHROTTLE_START_DELAY": max(cfg.delay, 0.0) if cfg.delay > 0 else 0.0,
        "AUTOTHROTTLE_MAX_DELAY": max(60.0, cfg.delay),
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(cfg.concurrency_per_domain),
        "DOWNLOAD_DELAY": cfg.delay,
        "CONCURRENT_REQUESTS": cfg.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": cfg.concurrency_per_domain,
        "DOWNLOAD_TIMEOUT": cfg.timeout,
        "DOWNLOAD_MAXSIZE": max(cfg.max_page_bytes, cfg.max_bytes),
        "DOWNLOAD_WARNSIZE": 0,
        "RETRY_ENABLED": cfg.retries > 0,
        "RETRY_TIMES": cfg.retries,
        "RETRY_HTTP_CODES": [429, 500, 502, 503, 504, 522, 524, 408],
        "SNEAKERGAN_BACKOFF_BASE": cfg.backoff_base,
        "SNEAKERGAN_BACKOFF_MAX": cfg.backoff_max,
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "sneakergan.collect.middlewares.BackoffRetryMiddleware": 550,
        },
        "ITEM_PIPELINES": {"sneakergan.collect.pipelines.StorePipeline": 300},
        "EXTENSIONS": {"sneakergan.collect.progress.ProgressExtension": 500,
                       "scrapy.extensions.telnet.TelnetConsole": None},
        "SNEAKERGAN_PROGRESS": cfg.progress,
        "LOG_LEVEL": cfg.log_level,
        "COOKIES_ENABLED": False,  # no sessions: we read public pages only
        "REFERER_ENABLED": True,
    }


def run_spider(spider_cls: type, cfg: CrawlConfig, **spider_kwargs: Any) -> dict[str, Any]:
    """Crawl until done (or Ctrl-C) and return Scrapy's final stats."""
    from scrapy.crawler import CrawlerProcess

    process = CrawlerProcess(scrapy_settings(cfg))
    if cfg.log_level not in ("DEBUG", "INFO"):
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
    crawler = process.create_crawler(spider_cls)
    process.crawl(crawler, config=cfg, **spider_kwargs)
    process.start()
    return dict(crawler.stats.get_stats() or {})


def check_fetched(stats: dict[str, Any], job: str) -> None:
    """Raise CrawlError when a crawl failed at everything it tried and got nothing (unreachable host, robots.txt
    forbidding all, every URL an error). A crawl with nothing new to do (all resumed) or stopped by Ctrl-C is fine.
    """
    from sneakergan.collect.progress import crawl_counts

    c = crawl_counts(stats)
    got = c["pages"] + c["recorded"] + c["images"] + c["rejected"] + c["duplicates"] + c["linked"]
    if got or not c["errors"] or stats.get("finish_reason") == "shutdown":
        return
    first = stats.get("collect/first_failure") or "no reason recorded"
    raise CrawlError(f"job {job} fetched nothing: {c['errors']} request{'s' * (c['errors'] != 1)} failed "
                     f"(first: {' '.join(str(first).split())[:300]})")
