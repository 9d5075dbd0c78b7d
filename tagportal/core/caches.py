"""Per-process caches: one thread-safe LRU on :mod:`cachetools`.

cachetools' caches are not thread-safe; as its documentation advises, every access
here holds a lock. Values are loaded outside the lock (two threads may load the same
value; the second store wins, which is harmless for values that only depend on their
key). Cached values are shared: callers must not change them.

Keys should name their content: the engine keys stored bitmaps by row and result time,
so a recomputed result is simply a new key and the old one ages out.

>>> cache = LRU(2)
>>> cache.set("a", 1); cache.set("b", 2); cache.get("a")
1
>>> cache.set("c", 3)  # "b" is the least recently used
>>> sorted(cache.get_many(["a", "b", "c"])[0].items())
[('a', 1), ('c', 3)]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping

from cachetools import LRUCache

_MISSING = object()


class LRU:
    """A least-recently-used cache of at most ``maxsize`` entries, or, with
    ``getsizeof``, of values whose sizes add up to at most ``maxsize``. A value larger
    than ``maxsize`` is kept alone (everything else is evicted), never refused."""

    def __init__(self, maxsize: int, getsizeof: Callable[[object], int] | None = None):
        self.maxsize = maxsize
        if getsizeof is not None:
            measure = getsizeof

            def getsizeof(value) -> int:
                return min(maxsize, max(0, int(measure(value))))

        self._cache = LRUCache(maxsize, getsizeof=getsizeof)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._cache

    def get(self, key: Hashable, default=None):
        """The value under ``key`` (now the most recently used), else ``default``."""
        with self._lock:
            return self._cache.get(key, default)

    def get_many(self, keys: Iterable[Hashable]) -> tuple[dict, list]:
        """``(found, missing)``: the values under ``keys`` that are cached, and the keys
        that are not (in the order given). A cached ``None`` counts as found."""
        found, missing = {}, []
        with self._lock:
            for key in keys:
                value = self._cache.get(key, _MISSING)
                if value is _MISSING:
                    missing.append(key)
                else:
                    found[key] = value
        return found, missing

    def set(self, key: Hashable, value) -> None:
        with self._lock:
            self._cache[key] = value

    def update(self, entries: Mapping) -> None:
        with self._lock:
            for key, value in entries.items():
                self._cache[key] = value

    def get_or_load(self, key: Hashable, load: Callable[[], object]):
        """The value under ``key``, loaded with ``load()`` (outside the lock) and kept
        when it is not cached."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            value = load()
            self.set(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
