"""A Scrapy extension that shows a Rich progress line while crawling: pages, images, rate, errors."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text
from scrapy import signals
from scrapy.exceptions import NotConfigured
from twisted.internet.task import LoopingCall


def crawl_counts(stats: dict[str, Any]) -> dict[str, int]:
    """The numbers a person watches, from Scrapy's stats."""
    g = lambda k: int(stats.get(k, 0) or 0)  # noqa: E731
    return {"pages": g("collect/pages"), "recorded": g("collect/pages_recorded"), "images": g("collect/images_ok"),
            "rejected": g("collect/images_rejected"), "duplicates": g("collect/duplicates"),
            "linked": g("collect/linked"), "errors": g("collect/errors")}


class RateColumn(ProgressColumn):
    """Items per second of a task (Rich's speed estimate)."""

    def __init__(self, unit: str = "it"):
        super().__init__()
        self.unit = unit

    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:.1f} {self.unit}/s" if task.speed else f"- {self.unit}/s", style="progress.data.speed")


class ProgressExtension:
    """Enabled by the SNEAKERGAN_PROGRESS setting; draws on stderr so stdout stays clean."""

    def __init__(self, crawler: Any):
        self.crawler = crawler
        self.console = Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"),
            TextColumn("pages {task.fields[pages]} · images {task.fields[images]} · rejected"
                       " {task.fields[rejected]} · errors {task.fields[errors]} · {task.fields[rate]:.1f} img/s"),
            TimeElapsedColumn(), console=self.console, transient=False)
        self.task = None
        self.loop = LoopingCall(self.update)
        self.t0 = time.monotonic()

    @classmethod
    def from_crawler(cls, crawler: Any) -> "ProgressExtension":
        if not crawler.settings.getbool("SNEAKERGAN_PROGRESS"):
            raise NotConfigured
        ext = cls(crawler)
        crawler.signals.connect(ext.opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        return ext

    def _fields(self) -> dict[str, Any]:
        c = crawl_counts(self.crawler.stats.get_stats())
        rate = c["images"] / max(1e-6, time.monotonic() - self.t0)
        return {**c, "linked": c["duplicates"] + c["linked"], "rate": rate}

    def opened(self, spider: Any) -> None:
        self.t0 = time.monotonic()
        self.progress.start()
        self.task = self.progress.add_task(spider.name, total=None, **self._fields())
        self.loop.start(0.5, now=False)

    def update(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, **self._fields())

    def closed(self, spider: Any, reason: str) -> None:
        if self.loop.running:
            self.loop.stop()
        self.update()
        self.progress.stop()
