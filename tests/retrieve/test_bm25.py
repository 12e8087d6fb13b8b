"""BM25 index: persistence beside the store, incremental sync, staleness, crash safety, filters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragpipe.retrieve import bm25 as bm25_module
from ragpipe.retrieve.bm25 import BM25Index
from ragpipe.retrieve.filters import parse_filter
from ragpipe.retrieve.memory import MemoryStore

from .conftest import make_chunks


@pytest.fixture
def tokenised(monkeypatch):
    """Records every text the BM25 tokenizer is asked to tokenise."""
    seen: list[str] = []
    original = bm25_module.Tokenizer.__call__

    def spy(self, texts):
        seen.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(bm25_module.Tokenizer, "__call__", spy)
    return seen


def _live_generation(store) -> str:
    return (store.index_dir / "bm25" / "CURRENT").read_text().strip()


def test_sync_persists_ids_and_revision_and_finds_exact_terms(store):
    index = BM25Index.sync(store)
    assert len(index) == store.count() == 8
    meta = json.loads((store.index_dir / "bm25" / _live_generation(store) / "meta.json").read_text())
    assert meta["revision"] == store.revision and meta["count"] == 8
    hits = index.search("protocol QZ7 telemetry", k=3)
    top = store.get([hits[0][0]])[0]
    assert "QZ7" in top.text
    assert all(score > 0 for _cid, score in hits)
    assert hits == sorted(hits, key=lambda h: -h[1])


def test_query_sharing_no_term_returns_nothing(store):
    assert BM25Index.sync(store).search("xylophone quasar", k=5) == []
    assert BM25Index.sync(store).search("the and of", k=5) == []  # stopwords only


def test_incremental_sync_tokenises_only_new_chunks_and_drops_removed(store, embedder, tokenised):
    BM25Index.sync(store)
    assert len(tokenised) == 8
    tokenised.clear()
    new = make_chunks([("notes/new.md", ["Quokkas live on Rottnest island."], {"lang": "en"})])
    store.add(new, embedder.embed([c.text for c in new]))
    gone = [c for c in store.iter_chunks() if "Rezept" in c.text]
    store.delete([c.id for c in gone])
    index = BM25Index.sync(store)
    assert tokenised == ["Quokkas live on Rottnest island."]
    assert index.revision == store.revision and len(index) == 8
    assert index.search("quokkas", k=2)[0][0] == new[0].id
    assert index.search("Rezept Mehl", k=2) == []


def test_sync_on_an_unchanged_store_tokenises_nothing(store, tokenised):
    BM25Index.sync(store)
    tokenised.clear()
    BM25Index.sync(store)
    assert tokenised == []


def test_open_loads_from_disk_and_resyncs_when_stale(store, embedder, tokenised):
    BM25Index.sync(store)
    tokenised.clear()
    assert len(BM25Index.open(store)) == 8 and tokenised == []  # fresh: loaded, not rebuilt
    new = make_chunks([("notes/late.md", ["Late arrivals mention zeppelins."], {})])
    store.add(new, embedder.embed([c.text for c in new]))
    index = BM25Index.open(store)
    assert index.revision == store.revision
    assert tokenised == ["Late arrivals mention zeppelins."]  # only the new chunk
    assert index.search("zeppelins", k=1)[0][0] == new[0].id


def test_an_index_opened_for_search_keeps_no_tokens_yet_a_later_sync_reuses_them(store, embedder, tokenised):
    BM25Index.sync(store)
    tokenised.clear()
    opened = BM25Index.open(store)
    assert opened.tokens is None  # searching needs the model, ids and fields only
    assert "QZ7" in store.get([opened.search("protocol QZ7 telemetry", k=1)[0][0]])[0].text
    tokenised.clear()  # the query's own tokens
    new = make_chunks([("notes/otters.md", ["Sea otters hold hands while sleeping."], {})])
    store.add(new, embedder.embed([c.text for c in new]))
    synced = BM25Index.sync(store)
    assert tokenised == ["Sea otters hold hands while sleeping."]  # the others' tokens came from disk
    assert synced.search("otters", k=1)[0][0] == new[0].id


def test_a_crash_while_writing_leaves_the_previous_index_live(store, embedder, monkeypatch):
    BM25Index.sync(store)
    before = _live_generation(store)
    new = make_chunks([("notes/crash.md", ["Crash test for walruses."], {})])
    store.add(new, embedder.embed([c.text for c in new]))

    def crash(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bm25_module.os, "replace", crash)
    with pytest.raises(OSError):
        BM25Index.sync(store)
    monkeypatch.undo()
    assert _live_generation(store) == before
    old = BM25Index._load(store.index_dir / "bm25", bm25_module.Tokenizer())
    assert old is not None and len(old) == 8  # the old generation is intact and readable
    index = BM25Index.open(store)  # stale -> resynced, stray folder cleaned up
    assert index.search("walruses", k=1)[0][0] == new[0].id
    assert len(list((store.index_dir / "bm25").glob("gen-*"))) == 1


def test_unreadable_index_is_rebuilt(store):
    BM25Index.sync(store)
    (store.index_dir / "bm25" / _live_generation(store) / "corpus.jsonl").write_text("{not json")
    assert len(BM25Index.open(store)) == 8


def test_filters_mask_bm25_results(store):
    index = BM25Index.sync(store)
    hits = index.search("doctor physician car automobile", k=10, flt=parse_filter("source~=notes/health*"))
    sources = {c.source for c in store.get([cid for cid, _ in hits])}
    assert sources == {"notes/health.md"}
    mask = index.mask(parse_filter("file_type=pdf"))
    assert mask.dtype == np.bool_ and mask.sum() == 4


def test_empty_store(tmp_path):
    index = BM25Index.sync(MemoryStore(tmp_path / "empty"))
    assert len(index) == 0 and index.search("anything", k=3) == []
