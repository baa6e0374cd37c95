"""Per-process resource caches that survive ``fork``: one helper for the engines and both bulk paths.

A resource that talks to a database or to a helper process (an Engine's pooled connections, an ADBC
connection, a helper's pipes) belongs to the process that opened it. A child made by ``fork`` inherits copies of
them and must neither use them (two processes on one socket or pipe) nor close them (closing a PostgreSQL
connection ends the parent's session; closing a helper's pipe stops it). :class:`PerProcess` keeps resources per
key for the process that made them; in a forked child it starts over:

- by default the inherited resources are *set aside*: kept referenced (so they are never closed, not even by
  the garbage collector) and never handed out; the child opens its own on demand;
- with ``reset_in_child``, each inherited resource is kept and reset in place instead (an Engine whose pool is
  replaced with ``dispose(close=False)`` stays usable by the Store objects that hold it).

The lock is replaced in the child too: a thread of the parent that held it at the fork does not exist there.
Two ways of use: :meth:`get` shares one resource per key (engines); :meth:`take` / :meth:`give` lend idle
resources out exclusively (connections, helper processes).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_caches: weakref.WeakSet[PerProcess[Any, Any]] = weakref.WeakSet()


class PerProcess(Generic[K, V]):
    """Resources of this process, per key: reset in a forked child, closed (``close``) when disposed."""

    def __init__(self, close: Callable[[V], None], *, reset_in_child: Callable[[V], None] | None = None) -> None:
        self._close = close
        self._reset_in_child = reset_in_child
        self._lock = threading.Lock()
        self._owner = os.getpid()
        self._items: dict[K, list[V]] = {}
        self._set_aside: list[V] = []  # a forked child's copies of its parent's resources: never used or closed
        _caches.add(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._owner = os.getpid()
        if self._reset_in_child is None:
            for items in self._items.values():
                self._set_aside.extend(items)
            self._items = {}
            return
        for items in self._items.values():
            for item in items:
                self._reset_in_child(item)

    def _ours(self) -> threading.Lock:
        """The lock, after starting over if this process was forked without the at-fork hook running."""
        if self._owner != os.getpid():
            self._after_fork()
        return self._lock

    def get(self, key: K, create: Callable[[], V]) -> V:
        """The shared resource of ``key``, made by ``create`` on first use (under the lock: made once)."""
        with self._ours():
            items = self._items.get(key)
            if items:
                return items[0]
            item = create()
            self._items[key] = [item]
            return item

    def take(self, key: K) -> V | None:
        """An idle resource of ``key``, now the caller's alone (``None``: none idle, open a new one)."""
        with self._ours():
            items = self._items.get(key)
            return items.pop() if items else None

    def give(self, key: K, item: V, *, max_idle: int) -> bool:
        """Put ``item`` back as idle; False when ``key`` already has ``max_idle`` (the caller closes it)."""
        with self._ours():
            items = self._items.setdefault(key, [])
            if len(items) >= max_idle:
                return False
            items.append(item)
            return True

    def idle(self, key: K) -> list[V]:
        """The resources cached for ``key`` right now (a copy; for diagnostics and tests)."""
        with self._ours():
            return list(self._items.get(key, ()))

    def pop(self, key: K) -> list[V]:
        """Remove (without closing) every resource of ``key``."""
        with self._ours():
            return self._items.pop(key, [])

    def pop_all(self) -> list[V]:
        """Remove (without closing) every resource of this process."""
        with self._ours():
            items = [item for group in self._items.values() for item in group]
            self._items = {}
            return items

    def dispose(self, key: K) -> None:
        """Close and forget every resource of ``key`` (before its database is dropped or replaced)."""
        for item in self.pop(key):
            self._close(item)

    def dispose_all(self) -> None:
        """Close and forget every resource of this process (at exit; tests)."""
        for item in self.pop_all():
            self._close(item)


def dispose_everything() -> None:
    """Close every resource of this process in every cache (engines' pooled connections, bulk connections,
    helpers): what a process about to end does so that nothing is left to the interpreter's teardown."""
    for cache in list(_caches):
        cache.dispose_all()


def _after_fork_in_child() -> None:
    for cache in list(_caches):
        cache._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
