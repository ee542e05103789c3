"""A crawl that fetched nothing (unreachable host) exits non-zero with one line saying why, not 0 after tracebacks."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sneakergan.collect.crawl import CrawlError, check_fetched
from sneakergan.errors import UserError

REPO = Path(__file__).resolve().parents[1]
FAST = ["--delay", "0", "--per-domain", "1", "--retries", "1", "--backoff", "0.1", "--quiet"]


def closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def collect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sneakergan.cli", "collect", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("what", ["shop", "urls"])
def test_unreachable_host_exits_non_zero_with_one_line(tmp_path, what):
    base = f"http://127.0.0.1:{closed_port()}"
    if what == "shop":
        src = tmp_path / "src.yaml"
        src.write_text(f'name: gone\nstart_urls: ["{base}/catalog"]\nallowed_domains: ["127.0.0.1"]\n'
                       "product_pages: {allow: ['/product/\\\\d+']}\nimages: {css: ['.gallery img']}\n")
    else:
        src = tmp_path / "urls.txt"
        src.write_text(f"{base}/a.jpg\n{base}/b.jpg\n")
    store = tmp_path / "store"
    r = collect(what, str(src), "--store", str(store), *FAST)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "ERROR" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: job") and "fetched nothing" in errors[0], r.stderr
    assert "Connection was refused" in errors[0]
    with sqlite3.connect(store / "manifest.sqlite") as con:  # the failures are kept for the next run
        assert con.execute("SELECT COUNT(*) FROM failures WHERE status = 'network_error'").fetchone()[0] >= 1


def test_what_counts_as_fetched_nothing():
    failed = {"collect/errors": 3, "collect/first_failure": "http://x/: refused", "finish_reason": "finished"}
    with pytest.raises(CrawlError, match=r"job j fetched nothing: 3 requests failed \(first: http://x/: refused\)"):
        check_fetched(failed, "j")
    assert issubclass(CrawlError, UserError)
    check_fetched({**failed, "collect/pages": 1}, "j")                # something was fetched
    check_fetched({**failed, "collect/pages_recorded": 4}, "j")       # resumed: all from the manifest
    check_fetched({**failed, "finish_reason": "shutdown"}, "j")       # Ctrl-C
    check_fetched({"finish_reason": "finished"}, "j")                 # nothing to do, nothing failed
