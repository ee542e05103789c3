"""Concurrent writers on one store: two importers started together into a new store lose nothing, round after
round; a held write lock is waited for; "database is locked" without a wait is retried, then one clear error."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_collect import images as fx  # noqa: E402

from sneakergan.collect.store import Store, StoreError, retry_busy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMPORTER = r"""
import sys, time
from pathlib import Path
from sneakergan.collect.importers import import_folder
from sneakergan.collect.store import Store
store, folder, start, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start - time.time()) + delay)  # a common start time, then this round's offset
with Store.open(store) as s:
    r = import_folder(s, folder)
print(r.seen, r.new_ok)
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    for k in range(2):
        d = root / f"src{k}"
        d.mkdir()
        for i in range(6):
            (d / f"{i}.png").write_bytes(fx.png(96, 80, seed=k * 100 + i))
        (d / "shared.png").write_bytes(fx.png(96, 80, seed=999))  # the same bytes in both: one image, two places
    return root


def test_two_importers_into_a_new_store_lose_nothing_over_many_rounds(folders, tmp_path):
    rounds = 12
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    for r in range(rounds):
        store = tmp_path / f"store{r}"
        start = time.time() + 0.4  # both processes are up by then
        # Offsets from simultaneous to one import-length apart: the second opens while the first writes/closes.
        offsets = (0.0, (r % 6) * 0.03)
        procs = [subprocess.Popen([sys.executable, "-c", IMPORTER, str(store), str(folders / f"src{k}"),
                                   str(start), str(offsets[k])], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for k in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, f"round {r}: {err[-2000:]}"
            assert out.split()[0] == "7"
        with Store.open(store, create=False) as s:
            c = s.counts()
            assert c["images"] == c["ok"] == 13, f"round {r}: {c}"
            assert c["sources_by_kind"] == {"folder": 14}, f"round {r}: {c}"


def test_a_held_write_lock_is_waited_for(tmp_path):
    store = Store.open(tmp_path / "s")
    other = sqlite3.connect(tmp_path / "s" / "manifest.sqlite", isolation_level=None,
                            check_same_thread=False)  # the timer thread commits
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    t0 = time.monotonic()
    rec = store.add_bytes(fx.png(96, 80, seed=1), {"kind": "folder", "image_url": "file:///a.png"})
    assert rec["new"] and time.monotonic() - t0 >= 0.4
    release.join()
    other.close()
    assert store.counts()["ok"] == 1
    store.close()


def test_busy_without_a_wait_is_retried_then_one_clear_error():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert retry_busy(flaky, "writing x") == "done" and len(calls) == 3

    def always_locked():
        raise sqlite3.OperationalError("database is locked")

    t0 = time.monotonic()
    with pytest.raises(StoreError, match="the store is busy") as e:
        retry_busy(always_locked, "writing x", retry_for=0.3)
    assert time.monotonic() - t0 < 2 and "\n" not in str(e.value)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):  # other errors are not retried
        retry_busy(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: x")), "reading x")
