"""Background jobs with progress (photo projection): one worker thread, a bounded queue, polled by id.

Projection takes seconds to minutes on a CPU, far too long for a request, so the upload returns a job id at once
and the page polls `GET /api/project/{job}` for progress and, at the end, the edit state to open.

A slot is reserved (`reserve`) before an upload is even read or decoded, so a crowd of uploads is refused with 503
instead of all decoding big images at once; the reservation becomes the job (`submit(slot=...)`) or is released.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from .pool import Overloaded

# run(payload, progress) -> result; progress(done, total, phase="") may be called from the worker thread at any rate.
JobFn = Callable[[Any, Callable[[int, int], None]], dict[str, Any]]


@dataclass
class Job:
    """What a poll returns: status queued | running | done | failed, progress in [0, 1], result or error."""

    id: str
    status: str = "queued"
    done: int = 0
    total: int = 0
    phase: str = ""
    result: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"job": self.id, "status": self.status, "progress": (self.done / self.total) if self.total else 0.0,
                "step": self.done, "steps": self.total, "phase": self.phase, "result": self.result,
                "error": self.error}


class Slot:
    """A reserved place in the job queue; release it if no job comes of it (a refused upload)."""

    def __init__(self, runner: "JobRunner") -> None:
        self.runner = runner
        self.used = False

    def release(self) -> None:
        if not self.used:
            self.used = True
            with self.runner._lock:
                self.runner._reserved -= 1


class JobRunner:
    """Runs jobs one at a time; refuses new ones (Overloaded) when `max_pending` are queued or running."""

    def __init__(self, fn: JobFn, max_pending: int = 2, keep: int = 200) -> None:
        self.fn = fn
        self.max_pending = max_pending
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._reserved = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="project")

    def pending(self) -> int:
        """Jobs queued or running, plus reserved slots."""
        with self._lock:
            return self._pending_locked()

    def _pending_locked(self) -> int:
        return self._reserved + sum(j.status in ("queued", "running") for j in self._jobs.values())

    def reserve(self) -> Slot:
        """Hold a place for a job about to be submitted; raises Overloaded when the queue is full."""
        with self._lock:
            if self._pending_locked() >= self.max_pending:
                raise Overloaded(retry_after=10)
            self._reserved += 1
        return Slot(self)

    def submit(self, payload: Any, total: int = 0, slot: Slot | None = None) -> Job:
        """Queue a job (in `slot` if one was reserved); raises Overloaded when the queue is full.

        `total` is the number of steps the job will report, shown from the first poll on."""
        with self._lock:
            if slot is not None and not slot.used:
                slot.used = True
                self._reserved -= 1
            elif self._pending_locked() >= self.max_pending:
                raise Overloaded(retry_after=10)
            job = Job(id=secrets.token_urlsafe(12), total=int(total))
            self._jobs[job.id] = job
            while len(self._jobs) > self.keep:  # forget the oldest finished jobs
                old = next((k for k, j in self._jobs.items() if j.status in ("done", "failed")), None)
                if old is None:
                    break
                del self._jobs[old]
        self._executor.submit(self._run, job, payload)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, payload: Any) -> None:
        job.status = "running"

        def progress(done: int, total: int, phase: str = "") -> None:
            job.done, job.total = int(done), int(total)
            if phase:
                job.phase = phase

        try:
            job.result = self.fn(payload, progress)
            job.status = "done"
        except Exception as e:  # noqa: BLE001 - a failed job reports its message; the server keeps running
            job.error = str(e) or type(e).__name__
            job.status = "failed"

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
