"""The ``ragas`` half of ``eval/ragas_parity.py``: runs in an interpreter that has ragas installed.

    <ragas-python> eval/ragas_parity_ragas.py INPUTS.json OUTPUT.json

Scores the same items with ragas' Faithfulness, ResponseRelevancy, LLMContextPrecisionWithReference
and LLMContextRecall against the same OpenAI-compatible llama.cpp server and the same MiniLM
embeddings; writes per-item scores (NaN as null) and the errors ragas logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" | {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        self.messages.append(text[:400])


def main() -> None:
    inputs, output = sys.argv[1], sys.argv[2]
    spec = json.loads(open(inputs, encoding="utf-8").read())
    collector = _Collect()
    logging.getLogger().addHandler(collector)

    import ragas
    from langchain_core.embeddings import Embeddings
    from langchain_openai import ChatOpenAI
    from ragas import EvaluationDataset, evaluate
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.llms import LangchainLLMWrapper
    from ragas.metrics import Faithfulness, LLMContextPrecisionWithReference, LLMContextRecall, ResponseRelevancy
    from ragas.run_config import RunConfig
    from sentence_transformers import SentenceTransformer

    class MiniLM(Embeddings):
        # ragas records ``model`` in its embedding usage events and requires a string there: a
        # SentenceTransformer in that attribute fails every answer-relevancy row.
        def __init__(self, path: str) -> None:
            self.model = path
            self.encoder = SentenceTransformer(path, device="cpu")

        def embed_documents(self, texts):
            return self.encoder.encode(list(texts), normalize_embeddings=True).tolist()

        def embed_query(self, text):
            return self.embed_documents([text])[0]

    llm = LangchainLLMWrapper(ChatOpenAI(base_url=spec["base_url"], api_key=os.environ.get("OPENAI_API_KEY") or "none",
                                         model=spec["model"],
                                         temperature=0, max_tokens=768, timeout=600, max_retries=0))
    embeddings = LangchainEmbeddingsWrapper(MiniLM(spec["embedding_path"]))
    dataset = EvaluationDataset.from_list([
        {"user_input": i["question"], "response": i["response"], "retrieved_contexts": i["contexts"],
         "reference": i["reference"]} for i in spec["items"]
    ])
    every = {"faithfulness": Faithfulness, "answer_relevancy": lambda: ResponseRelevancy(strictness=spec["strictness"]),
             "context_precision": LLMContextPrecisionWithReference, "context_recall": LLMContextRecall}
    names = spec.get("metrics") or list(every)
    metrics = [every[name]() for name in names]
    result = evaluate(dataset=dataset, metrics=metrics, llm=llm, embeddings=embeddings, raise_exceptions=False,
                      show_progress=False, run_config=RunConfig(timeout=900, max_workers=1, max_retries=1))
    frame = result.to_pandas()
    columns = {"faithfulness": "faithfulness", "answer_relevancy": "answer_relevancy",
               "context_precision": "llm_context_precision_with_reference", "context_recall": "context_recall"}
    scores = []
    for _, row in frame.iterrows():
        item = {}
        for name in names:
            value = row.get(columns[name])
            item[name] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        scores.append(item)
    json.dump({"version": ragas.__version__, "columns": list(frame.columns), "scores": scores,
               "errors": collector.messages[:50]}, open(output, "w", encoding="utf-8"), indent=1)


if __name__ == "__main__":
    main()
