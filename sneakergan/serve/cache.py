"""A size-bounded LRU of encoded images (bytes), so popular sneakers are rendered once."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Hashable


class BytesLRU:
    """Least-recently-used cache bounded by the total size of its values in bytes."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()  # the gallery builder and worker threads may share one cache

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            val = self._items.get(key)
            if val is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return val

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return  # would evict everything else for one entry
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= len(old)
            self._items[key] = value
            self.size += len(value)
            while self.size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self.size -= len(evicted)
