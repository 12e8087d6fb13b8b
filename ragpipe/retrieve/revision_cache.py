"""Values read from the chunk store by id, kept in memory while the store's revision is unchanged.

Every write or delete changes the store's ``revision``, so a value read at one revision stays
right until the next one: the first read after a change empties the cache. Used for chunk texts
(the retriever) and stored vectors (selectors and the verifier read the same candidates' vectors
in one query), which cost milliseconds per store read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class RevisionCache(Generic[V]):
    """A thread-safe id → value cache that empties when the revision changes or it grows past ``max_items``."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._values: dict[str, V] = {}
        self._revision: str | None = None
        self._lock = threading.Lock()

    def get_many(self, ids: Iterable[str], revision: str, fetch: Callable[[list[str]], dict[str, V]]) -> dict[str, V]:
        """The values of ``ids`` that exist: cached ones, plus ``fetch(missing)`` for the rest (then cached).

        ``fetch`` runs outside the lock, so concurrent queries never wait on each other's reads.
        """
        ids = list(dict.fromkeys(ids))
        with self._lock:
            if revision != self._revision or len(self._values) > self.max_items:
                self._values, self._revision = {}, revision
            values = self._values
            found = {i: values[i] for i in ids if i in values}
        missing = [i for i in ids if i not in found]
        if missing:
            fetched = fetch(missing)
            with self._lock:
                if self._values is values:  # not emptied by a newer revision meanwhile
                    values.update(fetched)
            found.update(fetched)
        return found

    def put(self, values: dict[str, V], revision: str) -> None:
        """Keep ``values`` read at ``revision`` (dropped when the cache has moved on to another one)."""
        with self._lock:
            if revision != self._revision or len(self._values) > self.max_items:
                self._values, self._revision = {}, revision
            self._values.update(values)
