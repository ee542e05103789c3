"""A bounded, batching render pool: requests wait a few milliseconds, then render together off the event loop.

Why batch: one generator forward on 8 images costs far less than 8 forwards of one, so under load the server
collects what arrives within `max_wait_ms` and renders it in one call. Why bounded: past `max_queue` waiting
requests a new one is refused at once (`Overloaded`, the app answers 503 + Retry-After) instead of piling up
latency for everyone. Requests whose client went away before their batch started are skipped, which is what
makes cancelling stale slider renders in the browser save server work.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Overloaded(Exception):
    """The queue is full; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(f"server busy: render queue is full, retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class PoolConfig:
    """Batching and bounding knobs of the render pool."""

    max_batch: int = 16      # images per generator call
    max_wait_ms: float = 4.0  # how long the first request of a batch waits for company
    max_queue: int = 256     # waiting + rendering requests beyond which new ones get 503
    workers: int = 1         # batches rendering at once: torch already uses every core for one batch, and one
                             # worker keeps the generator single-threaded (the renderer swaps its noise buffers)


@dataclass
class PoolStats:
    """Counters for the benchmark and /api/health."""

    submitted: int = 0
    rejected: int = 0
    skipped: int = 0  # cancelled before their batch ran
    batches: int = 0
    rendered: int = 0
    busy_s: float = 0.0
    batch_sizes: dict[int, int] = field(default_factory=dict)


class BatchPool(Generic[K, V]):
    """Run `fn(list_of_keys) -> list_of_values` on batches of submitted keys in worker threads.

    A value that is an exception is raised to that key's waiters only; an exception raised by `fn` reaches
    every waiter of the batch.

    Identical keys inside one batch are computed once. Use from one event loop: `await pool.start()`, then
    `await pool.submit(key)` from handlers, `await pool.close()` at shutdown.
    """

    def __init__(self, fn: Callable[[list[K]], list[V]], config: PoolConfig = PoolConfig()) -> None:
        self.fn = fn
        self.config = config
        self.stats = PoolStats()
        self._queue: asyncio.Queue[tuple[K, asyncio.Future[V]]] | None = None
        self._pending = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None

    @property
    def pending(self) -> int:
        """Requests queued or rendering now."""
        return self._pending

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="render")
        self._tasks = [asyncio.create_task(self._batcher()) for _ in range(self.config.workers)]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def submit_future(self, key: K) -> asyncio.Future[V]:
        """Queue a key; the future resolves with its value. Raises `Overloaded` when the queue is full."""
        if self._queue is None:
            raise RuntimeError("BatchPool.start() was not awaited")
        if self._pending >= self.config.max_queue:
            self.stats.rejected += 1
            raise Overloaded(retry_after=1 + self._pending // max(1, 8 * self.config.max_batch))
        fut: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending += 1
        self.stats.submitted += 1
        self._queue.put_nowait((key, fut))
        return fut

    async def submit(self, key: K) -> V:
        """Queue a key and wait for its value."""
        return await self.submit_future(key)

    async def _collect(self) -> list[tuple[K, asyncio.Future[V]]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.config.max_wait_ms / 1000
        while len(batch) < self.config.max_batch:
            try:  # take what is already queued without waiting, then wait out the window for more
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:
                break
        return batch

    async def _batcher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [(k, f) for k, f in batch if not f.done()]
            skipped = len(batch) - len(live)
            self.stats.skipped += skipped
            self._pending -= skipped
            if not live:
                continue
            keys = list(dict.fromkeys(k for k, _ in live))  # dedupe, keep order
            t0 = time.perf_counter()
            try:
                values = await loop.run_in_executor(self._executor, self.fn, keys)
                by_key = dict(zip(keys, values))
                for k, f in live:
                    if not f.done():
                        v = by_key[k]
                        # fn may answer one key with an exception (a bad request) without failing the batch
                        f.set_exception(v) if isinstance(v, BaseException) else f.set_result(v)
            except Exception as e:  # noqa: BLE001 - hand the failure to every waiter instead of killing the batcher
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
            finally:
                self._pending -= len(live)
                self.stats.batches += 1
                self.stats.rendered += len(keys)
                self.stats.busy_s += time.perf_counter() - t0
                self.stats.batch_sizes[len(keys)] = self.stats.batch_sizes.get(len(keys), 0) + 1
