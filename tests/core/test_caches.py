"""The one per-process cache: least recently used goes first, sizes add up, a cached
None is a value, and threads may share it."""

import threading

from tagportal.core.caches import LRU


def test_the_least_recently_used_entry_goes_first():
    cache = LRU(2)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.set("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2


def test_get_many_tells_cached_from_missing_and_none_is_a_value():
    cache = LRU(4)
    cache.update({("x", 1): None, ("y", 1): "y"})
    found, missing = cache.get_many([("x", 1), ("y", 1), ("z", 1)])
    assert found == {("x", 1): None, ("y", 1): "y"}
    assert missing == [("z", 1)]
    assert cache.get(("z", 1), "default") == "default"


def test_sizes_add_up_and_a_value_larger_than_the_cache_is_kept_alone():
    cache = LRU(10, getsizeof=len)
    cache.set("small", [1, 2, 3])
    cache.set("medium", [1] * 6)
    assert len(cache) == 2
    cache.set("more", [1, 2])  # 3 + 6 + 2 > 10: "small" goes
    assert "small" not in cache and len(cache) == 2
    cache.set("huge", [1] * 50)
    assert len(cache) == 1 and len(cache.get("huge")) == 50


def test_get_or_load_loads_once_and_clear_forgets():
    cache = LRU(4)
    loads = []

    def load():
        loads.append(1)
        return "value"

    assert cache.get_or_load("k", load) == "value"
    assert cache.get_or_load("k", load) == "value"
    assert len(loads) == 1
    cache.clear()
    assert len(cache) == 0 and cache.get_or_load("k", load) == "value" and len(loads) == 2


def test_threads_share_one_cache():
    cache = LRU(64)
    errors = []

    def work(offset):
        try:
            for i in range(2000):
                key = (offset + i) % 100
                cache.set(key, key)
                found, _missing = cache.get_many([key, key + 1])
                assert found.get(key, key) == key
        except Exception as exc:  # pragma: no cover - only when the cache breaks
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 7,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 64
