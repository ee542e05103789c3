"""The one item pipeline: verify and file every downloaded image in the store."""

from __future__ import annotations

from typing import Any

from sneakergan.collect.items import ImageItem, SourceItem


class StorePipeline:
    """Writes ImageItems with `Store.add_bytes` (decode check, sha256 dedupe) and links SourceItems.

    The store belongs to the spider (it also reads it to skip known URLs); limits come from its config."""

    def __init__(self, crawler: Any):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> "StorePipeline":
        return cls(crawler)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        spider = self.crawler.spider
        stats = self.crawler.stats
        store, cfg = spider.store, spider.cfg
        if isinstance(item, ImageItem):
            sources = item.sources or [{"kind": spider.kind, "image_url": item.url}]
            rec = store.add_bytes(item.data, sources[0], max_pixels=cfg.max_pixels, max_bytes=cfg.max_bytes,
                                  min_side=cfg.min_side)
            linked = sum(store.add_source(rec["sha256"], s) for s in sources[1:])
            stats.inc_value("collect/bytes", len(item.data))
            if not rec["new"]:
                stats.inc_value("collect/duplicates")
            elif rec["status"] == "ok":
                stats.inc_value("collect/images_ok")
            else:
                stats.inc_value("collect/images_rejected")
                stats.inc_value(f"collect/rejected/{rec['status']}")
            stats.inc_value("collect/linked", linked)
        elif isinstance(item, SourceItem):
            if store.add_source(item.sha256, item.source):
                stats.inc_value("collect/linked")
        return item
