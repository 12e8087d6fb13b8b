"""Local LLM backends: first-token latency and decode speed, same model and prompts.

Compares the embedded llama.cpp backend (in-process, own token loop) with llama.cpp's
OpenAI-compatible server reached through our OpenAI-compatible backend, both serving the
packaged SmolLM2 GGUF with the same thread count. Per repeat and prompt size it measures

* first-token latency: wall time of a 1-token completion (prefill + one decode step),
* decode speed: tokens per second of a streamed completion, counted after its first piece.

Every repeat starts its prompt with a fresh nonce so neither backend can reuse a cached prompt
prefix; rounds alternate between the backends so shared-machine load hits both alike. Load
averages are recorded because timings on a busy machine are only comparable within one run.

    python eval/bench_llm.py [--repeats 3] [--sizes 40,500] [--decode-tokens 32] [--threads 2]

Data: none (the prompts are generated; no evaluation data is read).
Prints a table and writes eval/results/llm.json (one entry per thread count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from ragpipe.llm.base import BaseLLM
from ragpipe.llm.llamacpp import LlamaCppLLM
from ragpipe.llm.llamacpp_server import LlamaCppServer
from ragpipe.llm.openai_compat import OpenAICompatLLM
from ragpipe.models import packaged_smollm2

RESULTS = Path(__file__).resolve().parent / "results" / "llm.json"
FILLER = (
    "The survey team logged water levels at each gauge along the river twice a day, noting the "
    "time, the reading and any debris near the intake. "
)


def build_prompt(target_tokens: int, nonce: int, llm: LlamaCppLLM) -> list[dict[str, str]]:
    """A user prompt of about ``target_tokens`` tokens whose first words differ per repeat."""
    body = f"Note {nonce}. "
    while llm.count_tokens(body) < target_tokens:
        body += FILLER
    return [
        {"role": "system", "content": f"Case {nonce}. Answer briefly."},
        {"role": "user", "content": body + "\nWhat does the team record at each gauge?"},
    ]


def counting_prompt(nonce: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Run {nonce}. Count from 1 to 200, separated by commas."}]


async def first_token_s(llm: BaseLLM, messages: list[dict[str, str]]) -> tuple[float, int]:
    start = time.perf_counter()
    completion = await llm.chat(messages, max_tokens=1, temperature=0.0)
    return time.perf_counter() - start, completion.usage.prompt_tokens


async def decode_rate(llm: BaseLLM, messages: list[dict[str, str]], tokens: int, tokenizer: LlamaCppLLM) -> float:
    """Tokens per second after the first streamed piece, within one streamed completion."""
    first: float | None = None
    pieces = []
    async for piece in llm.chat_stream(messages, max_tokens=tokens, temperature=0.0):
        first = first if first is not None else time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    generated = tokenizer.count_tokens("".join(pieces))
    if first is None or generated < 2 or end <= first:
        return 0.0
    return (generated - 1) / (end - first)


def summarise(samples: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    model_path = packaged_smollm2()
    loads: list[tuple[float, float, float]] = [os.getloadavg()]
    start = time.perf_counter()
    embedded = LlamaCppLLM(model_path, n_ctx=args.n_ctx, n_threads=args.threads)
    embedded.count_tokens("warm up")  # loads the model
    embedded_load_s = time.perf_counter() - start

    start = time.perf_counter()
    with LlamaCppServer(model_path, n_ctx=args.n_ctx, n_threads=args.threads) as server:
        server_start_s = time.perf_counter() - start
        remote = OpenAICompatLLM(base_url=server.base_url, model=server.model_alias, timeout_s=600.0)
        backends: dict[str, BaseLLM] = {"embedded llama.cpp": embedded, "llama.cpp server (openai)": remote}
        for llm in backends.values():  # one untimed call each: first-call costs are not latency
            await llm.chat(build_prompt(20, -1, embedded), max_tokens=2)

        ttft: dict[str, dict[int, list[float]]] = {name: {s: [] for s in args.sizes} for name in backends}
        prompt_tokens: dict[str, dict[int, int]] = {name: {} for name in backends}
        rates: dict[str, list[float]] = {name: [] for name in backends}
        for repeat in range(args.repeats):
            order = list(backends.items()) if repeat % 2 == 0 else list(reversed(backends.items()))
            for name, llm in order:
                for size in args.sizes:
                    seconds, n_prompt = await first_token_s(llm, build_prompt(size, repeat, embedded))
                    ttft[name][size].append(seconds)
                    prompt_tokens[name][size] = n_prompt
                rates[name].append(await decode_rate(llm, counting_prompt(repeat), args.decode_tokens, embedded))
            loads.append(os.getloadavg())

    return {
        "model": model_path.name,
        "threads": args.threads,
        "n_ctx": args.n_ctx,
        "repeats": args.repeats,
        "decode_tokens": args.decode_tokens,
        "embedded_load_s": embedded_load_s,
        "server_start_s": server_start_s,
        "backends": {
            name: {
                "first_token_s": {str(size): summarise(ttft[name][size]) for size in args.sizes},
                "prompt_tokens": {str(size): prompt_tokens[name][size] for size in args.sizes},
                "decode_tokens_per_s": summarise(rates[name]),
            }
            for name in ttft
        },
        "loadavg_1m": [round(load[0], 2) for load in loads],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }


def print_table(result: dict[str, Any]) -> None:
    sizes = list(next(iter(result["backends"].values()))["first_token_s"])
    header = f"{'backend':<28}" + "".join(f"{'TTFT@' + s + ' p50 s':>18}" for s in sizes) + f"{'decode tok/s p50':>18}"
    print(header)
    for name, row in result["backends"].items():
        cells = "".join(f"{row['first_token_s'][s]['p50']:>18.3f}" for s in sizes)
        print(f"{name:<28}{cells}{row['decode_tokens_per_s']['p50']:>18.1f}")
    tokens = {name: row["prompt_tokens"] for name, row in result["backends"].items()}
    print(f"prompt tokens per size: {tokens}")
    print(f"embedded model load {result['embedded_load_s']:.2f} s; server start {result['server_start_s']:.2f} s; "
          f"1-min load average during run {result['loadavg_1m']} on {result['cpu_count']} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="40,500", help="approximate prompt sizes in tokens, comma-separated")
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    result = asyncio.run(run(args))
    print_table(result)
    save(result)


def save(result: dict[str, Any]) -> None:
    """Keep one run per thread count, so runs with different settings sit side by side."""
    runs: dict[str, Any] = {}
    if RESULTS.exists():
        runs = json.loads(RESULTS.read_text()).get("runs", {})
    runs[f"threads={result['threads']}"] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
