"""The ask path and the Python API load only what they use: no LangChain, LlamaIndex or numba.

Each check runs in a fresh interpreter, since this test process may have imported them already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("langchain_core", "langsmith", "llama_index", "numba")

ASK = textwrap.dedent(
    """
    import json, sys
    from ragpipe import Pipeline
    from ragpipe.context import RunContext
    from ragpipe.graph import build_graph
    from ragpipe.ingest.testing import HashingEmbedder
    from ragpipe.llm.scripted import ScriptedLLM
    from ragpipe.retrieve.memory import MemoryStore
    from ragpipe.retrieve.retriever import Retriever
    from ragpipe.schema import Chunk
    from tests.graph.test_presets import scripted  # plausible replies per task

    texts = ["API keys are rotated every 90 days from the admin console.",
             "API keys are kept in the vault and never in the repository.",
             "Lunch is served at noon in the canteen."]
    chunks = [Chunk(id=f"c{i}", doc_id="ops", position=i, text=t, source="ops.md") for i, t in enumerate(texts)]
    embedder = HashingEmbedder()
    store = MemoryStore(sys.argv[1])
    store.add(chunks, embedder.embed(texts))

    graph = build_graph(sys.argv[2], retriever=Retriever(store, embedder))
    pipe = Pipeline(graph, RunContext(llm=ScriptedLLM(fn=scripted), embedder=embedder, store=store))
    answer = pipe.ask("How often are API keys rotated?")
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[3].split(",")))
    print(json.dumps({"text": answer.text, "evidence": [e.id for e in answer.evidence],
                      "timings": list(answer.timings), "loaded": loaded}))
    """
)


def run(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["fast", "meteora"])
def test_asking_a_pipeline_imports_no_framework(tmp_path: Path, method: str) -> None:
    out = run(ASK, str(tmp_path / "index"), method, ",".join(FRAMEWORKS))
    assert out["text"].startswith("Every 90 days") and out["evidence"][0] == "c0"
    assert out["timings"][0] == "retrieve" and out["timings"][-1] == "generate"
    assert out["loaded"] == []


def test_langchain_loads_when_a_node_is_used_as_a_runnable() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from ragpipe.graph import AcceptNode
        before = "langchain_core" in sys.modules
        runnable = AcceptNode().as_runnable()
        from langchain_core.runnables import Runnable
        print(json.dumps({"before": before, "runnable": isinstance(runnable, Runnable), "name": runnable.get_name()}))
        """
    )
    assert run(code) == {"before": False, "runnable": True, "name": "accept"}


def test_bm25s_loads_without_numba_and_numba_stays_importable() -> None:
    code = textwrap.dedent(
        """
        import importlib.util, json, sys
        from ragpipe.retrieve.bm25 import bm25s_module
        bm25s = bm25s_module()
        hidden = "numba" not in sys.modules
        importable = importlib.util.find_spec("numba") is None or __import__("numba") is not None
        print(json.dumps({"hidden": hidden, "importable": importable, "has_bm25": hasattr(bm25s, "BM25")}))
        """
    )
    assert run(code) == {"hidden": True, "importable": True, "has_bm25": True}
