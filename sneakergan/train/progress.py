"""How a training run shows progress, kept apart from the loop: the loop calls `step` (cheap, host numbers
only) every iteration and `tick` with the tick's log row once per tick.

- `PlainLines`: one full line per tick on stdout, flushed (nohup, job schedulers, CI, `| tee`), never wrapped.
- `LiveBar`: on a terminal, a Rich bar that fits the terminal's width, with the same tick lines printed above it.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

# Log keys shown in a tick line, with their short names, in this order.
_SHOWN = (("p", "p"), ("r_t", "r_t"), ("loss_G", "G"), ("loss_D", "D"), ("loss_r1", "r1"), ("loss_pl", "pl"))


def format_duration(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def tick_line(row: dict[str, Any], total_kimg: float) -> str:
    """'kimg 12.000/500  8.1 s/kimg  ETA 1:05:52  p 0.012  r_t 0.551  G 0.91  D 1.21 ...' from a log row."""
    spk = row.get("sec_per_kimg") or 0.0
    eta = max(total_kimg - row["kimg"], 0.0) * spk
    parts = [f"kimg {row['kimg']:.3f}/{total_kimg:g}", f"{spk:.2f} s/kimg", f"ETA {format_duration(eta)}"]
    for key, short in _SHOWN:
        if isinstance(row.get(key), (int, float)):
            parts.append(f"{short} {row[key]:.4g}" if key not in ("p", "r_t") else f"{short} {row[key]:.3f}")
    for key, value in (row.get("metrics") or {}).items():
        parts.append(f"{key} {value:.4g}")
    return "  ".join(parts)


class PlainLines:
    """One line per tick (and per message) on a stream, flushed at once so a pipe or a log file shows it live."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def _out(self) -> IO[str]:
        return self.stream or sys.stdout

    def start(self, cur_nimg: int, total_nimg: int) -> None:
        self.total_kimg = total_nimg / 1000

    def step(self, cur_nimg: int) -> None:
        pass

    def tick(self, row: dict[str, Any]) -> None:
        self.message(tick_line(row, self.total_kimg))

    def message(self, text: str) -> None:
        print(text, file=self._out(), flush=True)

    def warn(self, text: str) -> None:
        """Notes and warnings go to stderr, so stdout stays one line per tick."""
        print(text, file=sys.stderr, flush=True)

    def stop(self) -> None:
        pass


class LiveBar(PlainLines):
    """A Rich progress bar on the terminal (stderr), tick lines printed above it."""

    def start(self, cur_nimg: int, total_nimg: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from ..console import err_console

        super().start(cur_nimg, total_nimg)
        self._progress = Progress(
            TextColumn("[bold]train"), BarColumn(bar_width=None), TextColumn("{task.fields[kimg]} kimg"),
            TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
            console=err_console, transient=False, refresh_per_second=2, expand=True)
        self._task = self._progress.add_task("train", total=total_nimg, completed=cur_nimg, kimg="", rate="")
        self._last = (time.perf_counter(), cur_nimg)
        self._progress.start()

    def step(self, cur_nimg: int) -> None:
        fields = {"kimg": f"{cur_nimg / 1000:.2f}/{self.total_kimg:g}"}
        now = time.perf_counter()
        t0, n0 = self._last
        if now - t0 > 2:
            rate = (cur_nimg - n0) / (now - t0)
            fields["rate"] = f"{1000 / max(rate, 1e-9):.1f} s/kimg"
            self._last = (now, cur_nimg)
        self._progress.update(self._task, completed=cur_nimg, **fields)

    def message(self, text: str) -> None:
        if getattr(self, "_progress", None) is None:
            return super().message(text)
        self._progress.console.print(text, highlight=False, soft_wrap=True, markup=False)

    def warn(self, text: str) -> None:
        self.message(text)

    def stop(self) -> None:
        self._progress.stop()


def make_display(live: bool) -> PlainLines:
    """The live bar when asked for and both output streams are terminals, else plain lines."""
    if live and sys.stdout.isatty() and sys.stderr.isatty():
        return LiveBar()
    return PlainLines()
