"""``ragpipe ask`` as a user sees it: wall time and time to the first answer text, before and after.

    python eval/bench_ask.py [--docs FOLDER] [--questions 10] [--baseline-ref main] [--no-baseline]
                             [--verifier-cost] [--check-data]

Data: no evaluation data. Documentation folder: npm's "using npm" HTML pages as installed with
Node.js (``--docs``, default ``/usr/lib/node_modules/npm/docs/output/using-npm``), read in place;
the questions are the first ``--questions`` of ``eval/answers_npm_docs.json``. The index is built
once, by the first ask (reported apart, not in the medians), under ``eval/work/ask/index`` (``RAGPIPE_STORE__PATH``), never
inside the folder.

Each question runs ``python -m ragpipe ask QUESTION --docs FOLDER`` in a fresh process on the
embedded defaults (SmolLM2 through llama.cpp, the default method), once on this checkout and once
on the baseline: the tree of ``--baseline-ref`` unpacked with ``git archive`` under
``eval/work/ask/baseline`` (both run in the same pass, alternating, so machine load hits both).

* ``wall_s``: process start to exit, median over the questions.
* ``first_answer_s``: process start to the first byte of the answer on stdout (``ragpipe ask``
  writes nothing else there before the answer), median. stdout is a pseudo-terminal, as on a
  user's screen, so the answer streams as it is generated.
* ``printed_s``: process start to the usage line, the end of the printout. Without streaming
  ``ragpipe ask`` printed nothing before this point, so it is also the first answer text of a
  checkout that does not stream (``--no-baseline`` reports it as ``first_answer_s_unstreamed``).
* per run: the LLM calls, tokens and per-node seconds from the usage line, and the process's own
  peak RSS (``peak_rss_mb``; goal <= 600 MB for an ask on an indexed folder).
* ``first_ask``: one ask of this checkout on the folder with no index yet (it indexes first):
  wall and peak RSS (goal <= 1 GB).

* ``--verifier-cost``: each question also runs on this checkout with ``--no-verify``;
  ``verifier_cost`` is the wall it adds (with minus without, per question) and its share of the
  ask's wall (goal <= 25 %), beside the verify node's own time, which also holds the first
  reading of the documents that the answer call then reuses.

``--check-data`` checks the folder and the questions and exits. Prints a table and writes
eval/results/ask.json (goals: median wall <= 10 s, first answer text <= 4 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "ask.json"
WORK = ROOT / "eval" / "work" / "ask"
DEFAULT_DOCS = Path("/usr/lib/node_modules/npm/docs/output/using-npm")
QUESTIONS = ROOT / "eval" / "answers_npm_docs.json"
NO_VERIFY = "after_no_verify"  # this checkout with --no-verify (``--verifier-cost``)
GOALS = {"wall_s_median": 10.0, "first_answer_s_median": 4.0, "peak_rss_mb_first_ask": 1000, "peak_rss_mb_later_ask": 600}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
USAGE = re.compile(r"(\d+) LLM call\(s\), (\d+) prompt \+ (\d+) completion tokens, ([\d.]+) s \((.*)\)")


def child_env(code: Path) -> dict[str, str]:
    """The environment of one ``ragpipe ask``: the checkout under test first on the path, a wide terminal."""
    return {**os.environ, "PYTHONPATH": str(code), "RAGPIPE_STORE__PATH": str(WORK / "index"),
            "COLUMNS": "400", "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}


def timed_ask(code: Path, question: str, docs: Path, timeout: float, options: Sequence[str] = ()) -> dict[str, Any]:
    """Run one ask; wall seconds, seconds to the first stdout byte, its usage line and its peak RSS."""
    start = time.perf_counter()
    # stdout is a terminal, as for a user: ``ragpipe ask`` streams the answer only to one.
    screen, terminal = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ragpipe", "ask", question, "--docs", str(docs), *options], cwd=code,
                            env=child_env(code), stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    assert proc.stderr is not None
    errors = bytearray()
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    drain.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    first: float | None = None
    out = bytearray()
    arrivals: list[tuple[int, float]] = []  # (bytes on stdout so far, seconds) after each read
    while chunk := _read(screen):
        if first is None:
            first = time.perf_counter() - start
        out.extend(chunk)
        arrivals.append((len(out), time.perf_counter() - start))
    os.close(screen)
    drain.join()
    _, status, rusage = os.wait4(proc.pid, 0)  # this child's own peak memory
    killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    stderr = bytes(errors)
    text = screen_text(bytes(out))
    run: dict[str, Any] = {"question": question, "rc": proc.returncode, "wall_s": round(wall, 3),
                           "first_answer_s": round(first, 3) if first is not None else None,
                           "peak_rss_mb": round(rusage.ru_maxrss / 1024, 1),
                           "answer": text.strip().splitlines()[0] if text.strip() else ""}
    printed = printed_at(bytes(out), arrivals)
    run["printed_s"] = round(printed, 3) if printed is not None else None
    if proc.returncode != 0:
        run["stderr"] = stderr.decode("utf-8", "replace")[-500:]
    if match := USAGE.search(text):
        run.update(calls=int(match[1]), prompt_tokens=int(match[2]), completion_tokens=int(match[3]),
                   nodes={name: float(secs) for name, secs in
                          (part.rsplit(" ", 1) for part in match[5].split(", ") if " " in part)})
    return run


def screen_text(out: bytes) -> str:
    """What a terminal shows for ``out``: text without ANSI styling or carriage returns."""
    return _ANSI.sub("", out.decode("utf-8", "replace")).replace("\r", "")


def printed_at(out: bytes, arrivals: list[tuple[int, float]]) -> float | None:
    """Seconds at which the whole usage line (the end of the printout) had arrived, or None without one.

    rich styles the numbers and brackets of that line, so it is looked for in the text as shown,
    not in the raw bytes: the first read after which the shown text holds a complete usage line.
    """
    if not USAGE.search(screen_text(out)):
        return None
    return next((t for n, t in arrivals if USAGE.search(screen_text(out[:n]))), None)


def _read(fd: int) -> bytes:
    """The next bytes from a terminal; empty once the child has closed it (Linux reports EIO)."""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


def unpack_baseline(ref: str) -> tuple[Path, str]:
    """The tree of ``ref`` as plain files (no worktree, no checkout change); returns it and its commit."""
    commit = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    target = WORK / "baseline"
    stamp = target / ".commit"
    if not (stamp.exists() and stamp.read_text() == commit):
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        stamp.write_text(commit)
    return target, commit


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r["rc"] == 0]
    firsts = [r["first_answer_s"] for r in ok if r["first_answer_s"] is not None]
    out: dict[str, Any] = {"questions": len(runs), "failed": len(runs) - len(ok)}
    if ok:
        out["wall_s_median"] = round(statistics.median(r["wall_s"] for r in ok), 2)
        out["first_answer_s_median"] = round(statistics.median(firsts), 2) if firsts else None
        printed = [r["printed_s"] for r in ok if r.get("printed_s") is not None]
        out["first_answer_s_unstreamed_median"] = round(statistics.median(printed), 2) if printed else None
        nodes: dict[str, list[float]] = {}
        for r in ok:
            for name, secs in r.get("nodes", {}).items():
                nodes.setdefault(name, []).append(secs)
        out["node_s_median"] = {name: round(statistics.median(v), 2) for name, v in nodes.items()}
        out["completion_tokens_median"] = statistics.median(r.get("completion_tokens", 0) for r in ok)
        out["peak_rss_mb_max"] = max(r["peak_rss_mb"] for r in ok)
    return out


def verifier_cost(with_it: list[dict[str, Any]], without: list[dict[str, Any]]) -> dict[str, Any]:
    """What the verifier adds to each ask: wall with it minus wall without, over the questions both answered.

    Its own node time overstates it: the verify call is the first to read the documents, and the
    answer call then reuses that work from the backend's prefix cache.
    """
    pairs = [(a, b) for a, b in zip(with_it, without) if a["rc"] == 0 and b["rc"] == 0]
    added = [a["wall_s"] - b["wall_s"] for a, b in pairs]
    return {"questions": len(pairs), "seconds_median": round(statistics.median(added), 2) if added else None,
            "share_of_wall_median": round(statistics.median(x / a["wall_s"] for x, (a, _) in zip(added, pairs)), 3)
            if added else None,
            "node_share_of_wall_median": round(statistics.median(a.get("nodes", {}).get("verify", 0.0) / a["wall_s"]
                                                                 for a, _ in pairs), 3) if pairs else None,
            "per_question_s": [round(x, 2) for x in added]}


def check_data(docs: Path, count: int) -> list[str]:
    """The questions to ask; exits with a one-line error naming what is missing."""
    if not docs.is_dir():
        raise SystemExit(f"error: documentation folder {docs} does not exist; pass --docs DIR")
    questions = [q["question"] for q in json.loads(QUESTIONS.read_text(encoding="utf-8"))["questions"]]
    if len(questions) < count:
        raise SystemExit(f"error: {QUESTIONS} has {len(questions)} questions; --questions asks for {count}")
    return questions[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default=str(DEFAULT_DOCS), help="documentation folder (read in place)")
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--baseline-ref", default="main", help="git ref measured as the baseline")
    parser.add_argument("--no-baseline", action="store_true", help="measure this checkout only")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one ask may take")
    parser.add_argument("--check-data", action="store_true", help="check the folder and questions, then exit")
    parser.add_argument("--verifier-cost", action="store_true",
                        help="also ask each question with --no-verify on this checkout: the verifier's marginal cost")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    docs = Path(args.docs).resolve()
    questions = check_data(docs, args.questions)
    if args.check_data:
        print(f"ok: {docs} ({sum(1 for _ in docs.iterdir())} entries), {len(questions)} questions from {QUESTIONS}")
        return
    WORK.mkdir(parents=True, exist_ok=True)
    variants: dict[str, tuple[Path, tuple[str, ...]]] = {"after": (ROOT, ())}
    baseline_commit = None
    if not args.no_baseline:
        before, baseline_commit = unpack_baseline(args.baseline_ref)
        variants["before"] = (before, ())
    if args.verifier_cost:
        variants[NO_VERIFY] = (ROOT, ("--no-verify",))
    # The first ask on a folder indexes it: measured once on this checkout, from no index at all;
    # the timed runs then use the index it built, so none of them pays for indexing.
    shutil.rmtree(WORK / "index", ignore_errors=True)
    first_ask = timed_ask(ROOT, questions[0], docs, args.timeout)
    print(f"  first ask (indexes) wall {first_ask['wall_s']:.1f} s, peak RSS {first_ask['peak_rss_mb']:.0f} MB",
          file=sys.stderr)
    subprocess.run([sys.executable, "-m", "ragpipe", "index", str(docs)], cwd=ROOT, env=child_env(ROOT), check=True,
                   stdout=subprocess.DEVNULL)
    load = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for i, question in enumerate(questions):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for name in order:
            code, options = variants[name]
            run = timed_ask(code, question, docs, args.timeout, options)
            runs[name].append(run)
            print(f"  {name:6} q{i + 1:<2} wall {run['wall_s']:6.2f} s  first answer {run['first_answer_s']} s",
                  file=sys.stderr)
    result = {
        "description": "ragpipe ask on the embedded defaults over a folder of real documentation: wall seconds and "
                       "seconds to the first answer text on stdout, fresh process per question, index built",
        "docs": str(docs), "questions_file": str(QUESTIONS.relative_to(ROOT)), "goals": GOALS,
        "baseline_ref": None if args.no_baseline else args.baseline_ref, "baseline_commit": baseline_commit,
        "load_average_start": round(load, 2), "load_average_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "summary": {name: summary(r) for name, r in runs.items()}, "runs": runs,
        "first_ask": first_ask,
    }
    if NO_VERIFY in runs:
        result["verifier_cost"] = verifier_cost(runs["after"], runs[NO_VERIFY])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("| variant | questions | failed | wall s median (goal <= 10) | first answer s median (goal <= 4) "
          "| printout complete s median | nodes s median |")
    print("|---|---|---|---|---|---|---|")
    for name, s in result["summary"].items():
        nodes = ", ".join(f"{k} {v}" for k, v in s.get("node_s_median", {}).items())
        print(f"| {name} | {s['questions']} | {s['failed']} | {s.get('wall_s_median')} | "
              f"{s.get('first_answer_s_median')} | {s.get('first_answer_s_unstreamed_median')} | {nodes} |")
    print(f"first ask (indexes {docs.name}): wall {first_ask['wall_s']} s, peak RSS {first_ask['peak_rss_mb']} MB "
          f"(goal <= {GOALS['peak_rss_mb_first_ask']}); later asks: peak RSS max "
          + ", ".join(f"{name} {s.get('peak_rss_mb_max')} MB" for name, s in result["summary"].items())
          + f" (goal <= {GOALS['peak_rss_mb_later_ask']})")
    if cost := result.get("verifier_cost"):
        print(f"verifier's marginal cost (wall with it minus wall without, per question): median {cost['seconds_median']} s, "
              f"{cost['share_of_wall_median']:.0%} of the ask's wall (goal <= 25 %); its node time "
              f"{cost['node_share_of_wall_median']:.0%} of the wall, part of it reading documents the answer then reuses")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
