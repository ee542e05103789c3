"""What the spiders hand the pipeline: downloaded image bytes, or one more place for a known image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ImageItem:
    """Bytes fetched from `url`, found at every place in `sources` (rows for the `sources` table)."""

    url: str
    data: bytes
    sources: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:  # Scrapy logs items; never dump megabytes of bytes into the log
        return f"ImageItem(url={self.url!r}, bytes={len(self.data)}, sources={len(self.sources)})"


@dataclass
class SourceItem:
    """An image already in the store (by sha256) was found at one more place."""

    sha256: str
    source: dict[str, Any]
