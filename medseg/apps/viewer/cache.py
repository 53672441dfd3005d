"""A thread-safe LRU cache bounded by the bytes of what it holds (not by a count of entries).

``functools.lru_cache`` bounds the number of entries, but a 2048x2048 29-class case and a 64x64 one
differ by three orders of magnitude in size; the viewer must stay within a memory budget whatever
it browses, so entries are weighed by their ``nbytes``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteLRU(Generic[V]):
    """Keep the most recently used values while their total ``size(value)`` stays under ``max_bytes``.

    A value larger than the whole budget is returned to the caller but not kept."""

    def __init__(self, max_bytes: int, size: Callable[[V], int]) -> None:
        self.max_bytes = int(max_bytes)
        self._size = size
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._lock = threading.RLock()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: V) -> V:
        n = int(self._size(value))
        with self._lock:
            if key in self._items:
                self.nbytes -= self._items.pop(key)[1]
            if n > self.max_bytes:
                return value
            self._items[key] = (value, n)
            self.nbytes += n
            while self.nbytes > self.max_bytes:
                _, (_, m) = self._items.popitem(last=False)
                self.nbytes -= m
        return value

    def get_or_create(self, key: Hashable, make: Callable[[], V]) -> V:
        """The cached value, or ``make()`` stored under ``key`` (one ``make`` at a time per cache)."""
        with self._lock:
            hit = self.get(key)
            if hit is not None:
                return hit
            return self.put(key, make())
