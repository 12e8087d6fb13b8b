"""Store reads kept per revision, and the question's vector shared by every stage of a query."""

from __future__ import annotations

import numpy as np

from ragpipe.ingest.testing import HashingEmbedder
from ragpipe.retrieve.dense import QuestionVectors, embed_question
from ragpipe.retrieve.revision_cache import RevisionCache


def test_values_are_fetched_once_per_revision_and_missing_ids_stay_missing() -> None:
    cache: RevisionCache[str] = RevisionCache(max_items=100)
    asked: list[list[str]] = []
    store = {"a": "A", "b": "B"}

    def fetch(ids: list[str]) -> dict[str, str]:
        asked.append(ids)
        return {i: store[i] for i in ids if i in store}

    assert cache.get_many(["a", "gone", "a"], "r1", fetch) == {"a": "A"}
    assert cache.get_many(["b", "a"], "r1", fetch) == {"a": "A", "b": "B"}
    assert asked == [["a", "gone"], ["b"]]  # only what was not read before (a missing id is asked again)
    store["a"] = "A2"
    assert cache.get_many(["a"], "r2", fetch) == {"a": "A2"}  # a new revision reads again
    assert asked[-1] == ["a"]


def test_the_cache_empties_when_it_grows_past_its_size() -> None:
    cache: RevisionCache[int] = RevisionCache(max_items=2)
    asked: list[str] = []
    fetch = lambda ids: {i: asked.append(i) or len(asked) for i in ids}  # noqa: E731
    cache.get_many(["a", "b", "c"], "r", fetch)
    cache.get_many(["a"], "r", fetch)
    assert asked == ["a", "b", "c", "a"]


def test_a_question_is_embedded_once_per_embedder() -> None:
    vectors = QuestionVectors(size=2)
    first, second = HashingEmbedder(), HashingEmbedder()
    a = vectors.get(first, "how are keys rotated?")
    assert np.array_equal(vectors.get(first, "how are keys rotated?"), a)
    assert first.calls == [1]
    vectors.get(second, "how are keys rotated?")
    assert second.calls == [1]  # another embedder embeds for itself
    vectors.get(first, "q2")
    vectors.get(first, "q3")
    vectors.get(first, "how are keys rotated?")
    assert first.calls == [1, 1, 1, 1]  # the oldest question fell out of the cache


def test_shared_question_vectors_are_read_only_and_unhashable_embedders_still_work() -> None:
    class Unhashable(HashingEmbedder):
        __hash__ = None  # type: ignore[assignment]

    vector = embed_question(HashingEmbedder(), "q")
    assert not vector.flags.writeable  # one caller cannot change another's vector
    odd = Unhashable()
    embed_question(odd, "q")
    embed_question(odd, "q")
    assert odd.calls == [1, 1]


def test_values_put_at_the_current_revision_are_served_and_a_newer_revision_drops_them() -> None:
    cache: RevisionCache[str] = RevisionCache(max_items=100)
    asked: list[list[str]] = []
    fetch = lambda ids: asked.append(ids) or {i: i.upper() for i in ids}  # noqa: E731
    cache.put({"a": "put"}, "r1")
    assert cache.get_many(["a", "b"], "r1", fetch) == {"a": "put", "b": "B"}
    assert asked == [["b"]]
    assert cache.get_many(["a"], "r2", fetch) == {"a": "A"}  # read again at a new revision
