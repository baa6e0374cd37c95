"""The per-process resource cache behind the engines and both bulk paths: fresh resources in a forked child."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from alphaforge.db.per_process import PerProcess


class Resource:
    """Stands for a connection: remembers the process that opened it, and what was done to it where."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.resets: list[int] = []


def _in_fork_child(work: Any) -> Any:
    """Run ``work()`` in a forked child and return what it returned (the child exits without cleanup)."""
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()

    def child() -> None:
        there.send(work())
        os._exit(0)

    proc = ctx.Process(target=child)
    proc.start()
    if not here.poll(20):
        proc.kill()
        proc.join()
        pytest.fail("the forked child did not answer (deadlocked?)")
    result = here.recv()
    proc.join(20)
    assert proc.exitcode == 0
    return result


def test_a_forked_child_gets_fresh_resources_and_never_closes_its_parents() -> None:
    closed: list[Resource] = []
    cache: PerProcess[str, Resource] = PerProcess(closed.append)
    shared = cache.get("db", Resource)
    lent = Resource()
    assert cache.give("conn", lent, max_idle=2)

    def child() -> dict[str, Any]:
        fresh = cache.get("db", Resource)
        idle = cache.take("conn")
        cache.dispose_all()  # closes what this child opened, and only that
        return {"pid": os.getpid(), "fresh_pid": fresh.pid, "idle": idle, "closed": [r.pid for r in closed]}

    seen = _in_fork_child(child)
    assert seen["fresh_pid"] == seen["pid"] != os.getpid()
    assert seen["idle"] is None  # the parent's idle connection is never lent out in the child
    assert seen["closed"] == [seen["pid"]]  # the inherited copies were set aside, not closed
    # the parent's resources are untouched
    assert cache.get("db", Resource) is shared and cache.take("conn") is lent and closed == []


def test_resources_reset_in_place_stay_usable_in_the_child() -> None:
    # The engine cache's mode: Stores hold the Engine objects, so the child keeps them with a fresh pool.
    cache: PerProcess[str, Resource] = PerProcess(lambda r: None, reset_in_child=lambda r: r.resets.append(os.getpid()))
    engine = cache.get("db", Resource)

    def child() -> tuple[bool, list[int], int]:
        return cache.get("db", Resource) is engine, engine.resets, os.getpid()

    same, resets, child_pid = _in_fork_child(child)
    assert same and resets == [child_pid]
    assert engine.resets == []  # nothing was reset in the parent


def test_a_lock_held_by_another_thread_at_fork_time_does_not_deadlock_the_child() -> None:
    cache: PerProcess[str, Resource] = PerProcess(lambda r: None)
    inside, release = threading.Event(), threading.Event()

    def slow_create() -> Resource:
        inside.set()
        release.wait(30)
        return Resource()

    holder = threading.Thread(target=cache.get, args=("slow", slow_create))
    holder.start()
    assert inside.wait(10)  # the thread now holds the cache's lock
    try:
        child_pid = _in_fork_child(lambda: cache.get("other", Resource).pid)
    finally:
        release.set()
        holder.join(10)
    assert child_pid != os.getpid()


def test_dispose_closes_one_key_and_give_respects_max_idle() -> None:
    closed: list[Resource] = []
    cache: PerProcess[str, Resource] = PerProcess(closed.append)
    a, b, c = Resource(), Resource(), Resource()
    assert cache.give("x", a, max_idle=2) and cache.give("x", b, max_idle=2)
    assert not cache.give("x", c, max_idle=2)  # full: the caller closes it
    assert cache.give("y", c, max_idle=2)
    cache.dispose("x")
    assert closed == [a, b] and cache.idle("x") == [] and cache.idle("y") == [c]


def test_a_relative_sqlite_url_follows_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine cache is per process: ``sqlite:///research.db`` opened in two directories is two databases."""
    from sqlalchemy import text

    from alphaforge.db.engine import dispose_engine, get_engine

    seen = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        with get_engine("sqlite:///research.db").begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS t (name TEXT)"))
            conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": name})
            seen.append(conn.execute(text("SELECT group_concat(name) FROM t")).scalar_one())
    for name in ("a", "b"):
        monkeypatch.chdir(tmp_path / name)
        dispose_engine("sqlite:///research.db")
    assert seen == ["a", "b"]
    assert (tmp_path / "a" / "research.db").is_file() and (tmp_path / "b" / "research.db").is_file()
