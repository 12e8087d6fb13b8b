"""Peer baseline: rerank BM25 candidates with rank_llm's RankGPT listwise reranker (SafeOpenai).

The benchmark calls this script as a subprocess with the rank_llm venv's python; it points rank_llm's
OpenAI path at a local OpenAI-compatible server (llama.cpp) and records, per query, the reranked ids,
the LLM calls, the prompt/completion tokens the server reported and the wall time. It does not import
ragpipe.

    peer_rankllm.py --base-url URL --model NAME --input items.json --out peer.json \
        [--window 20] [--step 10] [--max-tokens 120] [--context-size 4096] [--timeout 60]

items.json: [{"qid", "question", "candidates": [{"id", "text", "score"}, ...]}, ...], BM25 order.
peer.json: {"ran": true, "peer": "rank_llm", "version", "setup", "notes", "per_query": {qid: {...}}},
or {"ran": false, "why": "<error>"} with a non-zero exit.

Build the venv (rank-llm hard-requires vllm, which its OpenAI path never uses, so it goes in with
--no-deps; importing rank_llm.rerank loads its lit5 module, which needs a transformers 4.x that still has
transformers.modeling_utils.find_pruneable_heads_and_indices; torch comes from the main environment):

    $ python -m venv --system-site-packages /tmp/rankllm-venv
    $ echo torch==2.13.0 > /tmp/rankllm-constraints.txt
    $ /tmp/rankllm-venv/bin/pip install --no-deps rank-llm==0.25.7
    $ /tmp/rankllm-venv/bin/pip install -c /tmp/rankllm-constraints.txt transformers==4.44.2 'openai>=1.23.6,<2' tiktoken dacite ftfy
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import logging
import sys
import time
import traceback
import types
import urllib.request

SETUP = "\n".join(line.strip()[2:] for line in __doc__.splitlines() if line.strip().startswith("$ "))
CHAT_TOKENS_PER_MESSAGE = 5  # chat-template tokens around each message (<|im_start|>role\n ... <|im_end|>\n)


def stub_vllm(notes: list[str]) -> None:
    """rank_llm.rerank imports vllm at import time for its local-model rerankers; SafeOpenai never uses it."""
    if importlib.util.find_spec("vllm") is not None:
        return
    vllm, outputs = types.ModuleType("vllm"), types.ModuleType("vllm.outputs")
    vllm.RequestOutput = outputs.RequestOutput = object  # only used in type annotations
    vllm.outputs = outputs
    sys.modules.update({"vllm": vllm, "vllm.outputs": outputs})
    notes.append("vllm is not installed: an empty placeholder module stands in for it so that rank_llm imports "
                 "(only rank_llm's local vLLM rerankers use it, not SafeOpenai)")


class ServerTokenizer:
    """Stands in for tiktoken inside rank_llm: counts tokens with the server's own tokenizer.

    tiktoken would download its cl100k_base encoding at run time (no internet here), and it is not the
    served model's tokenizer anyway. Uses llama-cpp-python's /extras/tokenize/count; if the server has
    no such endpoint, falls back to a local estimate of one token per 3 characters.
    """

    def __init__(self, base_url: str, model: str) -> None:
        self.url = base_url.rstrip("/").removesuffix("/v1") + "/extras/tokenize/count"
        self.model = model
        try:
            self.count("probe")
            self.source = f"the server's tokenizer ({self.url})"
        except (OSError, KeyError, ValueError):
            self.url = None
            self.source = "a local estimate (characters / 3)"

    @functools.lru_cache(maxsize=None)
    def count(self, text: str) -> int:
        if self.url is None:
            return len(text) // 3 + 1
        body = json.dumps({"input": text, "model": self.model}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(json.load(reply)["count"])

    def encode(self, text: str) -> list[int]:
        return [0] * self.count(text)  # rank_llm only ever takes len() of the encoding

    def get_encoding(self, name: str) -> ServerTokenizer:
        return self


def make_reranker(args: argparse.Namespace, notes: list[str]):
    import openai
    from rank_llm.rerank.listwise import SafeOpenai, rank_gpt

    tokenizer = ServerTokenizer(args.base_url, args.model)
    rank_gpt.tiktoken = tokenizer  # rank_gpt's only use of tiktoken is get_encoding(...).encode(...)
    notes.append(f"rank_llm's token counting (tiktoken) is patched to use {tokenizer.source}; it only decides "
                 f"how far rank_llm truncates passages to fit --context-size, plus {CHAT_TOKENS_PER_MESSAGE} "
                 "chat-template tokens per message")

    class BoundedSafeOpenai(SafeOpenai):
        """SafeOpenai with every call bounded and the server-reported usage of each call recorded."""

        max_out: int
        timeout_s: float
        calls: list[dict]  # one entry per LLM call of the current query

        def _call_completion(self, *args, return_text=False, reduce_length=False, **kwargs):
            # rank_llm's own version sends no max_tokens and retries forever on any error (a 30 s timeout
            # included); here each call has max_tokens, a finite timeout and openai's one retry, and a call
            # that still fails returns "" (rank_llm then keeps that window in its current order).
            try:
                completion = openai.chat.completions.create(
                    *args, **kwargs, max_tokens=self.max_out, timeout=self.timeout_s)
            except Exception as error:  # noqa: BLE001 - recorded and counted, never retried forever
                self.calls.append({"error": f"{type(error).__name__}: {error}"})
                return "" if return_text else None
            usage = completion.usage
            self.calls.append({"prompt_tokens": getattr(usage, "prompt_tokens", None),
                               "completion_tokens": getattr(usage, "completion_tokens", None)})
            return (completion.choices[0].message.content or "") if return_text else completion

        def num_output_tokens(self, current_window_size=None) -> int:
            return self.max_out  # the output budget really reserved in the context

        def get_num_tokens(self, prompt) -> int:
            return super().get_num_tokens(prompt) + CHAT_TOKENS_PER_MESSAGE * len(prompt)

    openai.max_retries = 1
    notes.append(f"each LLM call is bounded: max_tokens={args.max_tokens}, timeout={args.timeout:g} s, one retry "
                 "(openai client); a call that still fails keeps its window's order and counts in failed_calls "
                 "(rank_llm 0.25.7 itself sends no max_tokens and retries forever)")
    model = BoundedSafeOpenai(
        model=args.model, context_size=args.context_size,
        prompt_template_path=rank_gpt.TEMPLATES / "rank_gpt_template.yaml",  # RankGPT prompt
        window_size=args.window, stride=args.step, keys="no-key-needed",
        base_url=args.base_url.rstrip("/") + "/",  # rank_llm sets openai.base_url, which is used as given
    )
    model.max_out, model.timeout_s, model.calls = args.max_tokens, args.timeout, []
    return model


def rerank_all(args: argparse.Namespace, notes: list[str]) -> dict:
    from rank_llm.data import Candidate, Query, Request

    model = make_reranker(args, notes)
    per_query = {}
    with open(args.input) as items:
        items = json.load(items)
    for item in items:
        request = Request(
            query=Query(text=item["question"], qid=item["qid"]),
            candidates=[Candidate(docid=c["id"], score=float(c["score"]), doc={"text": c["text"]})
                        for c in item["candidates"]],
        )
        model.calls = []
        start = time.perf_counter()
        # One back-to-front sliding-window pass over all candidates (window/stride set on the model).
        [result] = model.rerank_batch([request], rank_start=0, rank_end=len(request.candidates),
                                      populate_invocations_history=True)
        wall_s = time.perf_counter() - start
        # Token counts: the server's usage per call; rank_llm's own estimate where the server gave none.
        prompt, completion, estimated = [], [], 0
        for call, invocation in zip(model.calls, result.invocations_history):
            if "error" in call:
                continue
            if call["prompt_tokens"] is None or call["completion_tokens"] is None:
                call = {"prompt_tokens": invocation.input_token_count,
                        "completion_tokens": invocation.output_token_count}
                estimated += 1
            prompt.append(call["prompt_tokens"])
            completion.append(call["completion_tokens"])
        per_query[item["qid"]] = {
            "ranking": [c.docid for c in result.candidates],
            "llm_calls": len(model.calls),
            "prompt_tokens": sum(prompt),
            "completion_tokens": sum(completion),
            "wall_s": round(wall_s, 3),
            "prompt_tokens_per_call": prompt,
            "responses": [invocation.response for invocation in result.invocations_history],
            "failed_calls": [c["error"] for c in model.calls if "error" in c],
            "calls_with_estimated_tokens": estimated,
        }
    failed = [e for q in per_query.values() for e in q["failed_calls"]]
    if failed and len(failed) == sum(q["llm_calls"] for q in per_query.values()):
        raise RuntimeError(f"every LLM call failed, the first with {failed[0]}")
    notes.append("prompt_tokens/completion_tokens are the usage the server reported for each call "
                 "(rank_llm's own estimate only for calls listed in calls_with_estimated_tokens)")
    return per_query


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=120, help="completion budget of each LLM call")
    parser.add_argument("--context-size", type=int, default=4096, help="the server's context window (n_ctx)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for each LLM call")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no log line per HTTP request

    notes: list[str] = []
    try:
        stub_vllm(notes)
        per_query = rerank_all(args, notes)
        report = {"ran": True, "peer": "rank_llm", "version": importlib.metadata.version("rank-llm"),
                  "setup": SETUP, "notes": notes, "window": args.window, "step": args.step,
                  "max_tokens": args.max_tokens, "per_query": per_query}
        code = 0
    except Exception as error:  # noqa: BLE001 - the benchmark reads the reason from the JSON
        traceback.print_exc()
        report, code = {"ran": False, "why": "".join(traceback.format_exception_only(error)).strip()}, 1
    with open(args.out, "w") as out:
        json.dump(report, out, indent=2)
    return code


if __name__ == "__main__":
    sys.exit(main())
