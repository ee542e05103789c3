"""Retries that back off: 429 and 5xx answers are retried after a growing pause, not at once."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any

from scrapy.downloadermiddlewares.retry import RetryMiddleware

try:  # Scrapy >= 2.18
    from scrapy.utils.asyncio import sleep as _sleep
except ImportError:  # pragma: no cover - older Scrapy
    from scrapy.utils.defer import maybe_deferred_to_future
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    async def _sleep(seconds: float) -> None:
        await maybe_deferred_to_future(deferLater(reactor, seconds))


def retry_after_seconds(value: str | bytes | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def backoff_delay(retry_times: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Pause before retry number `retry_times` (1-based): the server's Retry-After if given, else
    base * 2**(n-1) with +-20 % jitter (so parallel crawlers do not retry in lockstep); never over `cap`."""
    if retry_after is not None:
        return min(cap, retry_after)
    return min(cap, base * 2 ** (retry_times - 1) * random.uniform(0.8, 1.2))


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's RetryMiddleware, with a pause before each retry of a 429/5xx answer.

    Settings: RETRY_* as usual, SNEAKERGAN_BACKOFF_BASE and SNEAKERGAN_BACKOFF_MAX (seconds)."""

    def __init__(self, settings: Any):
        super().__init__(settings)
        self.backoff_base = settings.getfloat("SNEAKERGAN_BACKOFF_BASE", 2.0)
        self.backoff_max = settings.getfloat("SNEAKERGAN_BACKOFF_MAX", 120.0)

    async def process_response(self, request: Any, response: Any, spider: Any = None) -> Any:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        n = request.meta.get("retry_times", 0) + 1
        if n <= request.meta.get("max_retry_times", self.max_retry_times):
            delay = backoff_delay(n, self.backoff_base, self.backoff_max,
                                  retry_after_seconds(response.headers.get("Retry-After")))
            self.crawler.stats.inc_value("collect/backoff_seconds", delay)
            await _sleep(delay)
        return self._retry(request, f"{response.status}") or response
