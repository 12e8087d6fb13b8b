"""Auto answers: a usable generated answer (or abstention) gives way to the quote when the evidence
answers better, judged by the evidence alone; generate mode keeps what the model said."""

from __future__ import annotations

import numpy as np

from ragpipe.context import RunContext
from ragpipe.generate import Generator
from ragpipe.generate.choose import backing_coverage, prefer_quote, quote_could_win
from ragpipe.generate.extractive import extract_answer
from ragpipe.generate.generator import Generation
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.schema import Chunk, ScoredChunk

QUESTION = "Which file keeps files out of your npm package?"
IGNORE = ("Keeping files out of your Package\nUse a .npmignore file to keep stuff out of your package. If there's "
          "no .npmignore file, but there is a .gitignore file, then npm will ignore the stuff matched by the "
          ".gitignore file.")
def evidence_chunk(chunk_id: str, doc_id: str, position: int, text: str, source: str) -> ScoredChunk:
    return ScoredChunk(chunk=Chunk(id=chunk_id, doc_id=doc_id, position=position, text=text, source=source))


CACHE = ("cache\nDefault: Windows: %LocalAppData%\\npm-cache , Posix: ~/.npm\nType: Path\n"
         "The location of npm's cache directory.")
EVIDENCE = [
    evidence_chunk("ignore", "developers", 3, IGNORE, "developers.html"),
    evidence_chunk("cache", "config", 12, CACHE, "config.html"),
]
VULN_QUESTION = "Which pseudo selector matches a dependency that has a known vulnerability?"
VULN = ("Pseudo Selectors\n:vuln\nThe :vuln pseudo selector retrieves data from the registry and returns information "
        "about which of your dependencies has a known vulnerability. Only dependencies whose current version "
        "matches a vulnerability will be returned.")
OUTDATED = ":outdated\nThe :outdated pseudo selector retrieves data from the registry about outdated dependencies."
VULN_EVIDENCE = [
    evidence_chunk("vuln", "selectors", 8, VULN, "dependency-selectors.html"),
    evidence_chunk("outdated", "selectors", 9, OUTDATED, "dependency-selectors.html"),
]


async def run(reply: str, answer: str = "auto", question: str = QUESTION,
              evidence: list[ScoredChunk] = EVIDENCE) -> tuple[Generation, ScriptedLLM]:
    llm = ScriptedLLM([reply])
    result = await Generator(answer=answer).agenerate(question, evidence, RunContext(llm=llm))
    return result, llm


async def test_an_answer_built_on_the_wrong_sentence_gives_way_to_the_quote() -> None:
    # Qwen2.5-0.5B on npm's docs: fluent, cited, its words all in the evidence, and wrong.
    result, llm = await run("The cache file keeps files out of your npm package [2].")
    answer = result.answer
    assert answer.mode == "extracted" and len(llm.requests) == 1  # no retry: the answer was usable
    assert answer.text.startswith("\u201cUse a .npmignore file to keep stuff out of your package.\u201d [1]")
    assert answer.citations[0].chunk_id == "ignore"
    event = result.events[-1]
    assert event.kind == "extractive" and "rests on evidence" in event.message
    assert event.data["replaced"] == {"text": "The cache file keeps files out of your npm package [1].",
                                      "abstained": False, "cited": ["cache"]}


async def test_generate_mode_keeps_the_generated_answer() -> None:
    result, _ = await run("The cache file keeps files out of your npm package [2].", answer="generate")
    assert result.answer.mode == "generated" and "cache file" in result.answer.text


async def test_an_answer_resting_on_the_matching_sentence_stands() -> None:
    result, _ = await run("A .npmignore file keeps files out of your package [1].")
    assert result.answer.mode == "generated"
    assert result.answer.text == "A .npmignore file keeps files out of your package [1]."
    assert "extractive" not in [e.kind for e in result.events]


async def test_a_rambling_uncited_wrong_answer_gives_way_too() -> None:
    # SmolLM2-135M: a backticked literal the evidence holds, from the sentence about the cache.
    reply = ("The file that keeps files out of your npm package is the `npm-cache` file. This file is used to "
             "cache the npm-package's cache directory.")
    result, _ = await run(reply)
    assert result.answer.mode == "extracted" and result.answer.citations[0].chunk_id == "ignore"


async def test_an_abstention_gives_way_when_one_sentence_holds_the_question() -> None:
    result, _ = await run("Not found in the documents.", question=VULN_QUESTION, evidence=VULN_EVIDENCE)
    answer = result.answer
    assert answer.mode == "extracted" and not answer.abstained
    assert ":vuln pseudo selector" in answer.text and answer.citations[0].chunk_id == "vuln"
    assert result.events[-1].data["replaced"]["abstained"] is True
    assert "abstained" in result.events[-1].message


async def test_an_abstention_stands_in_generate_mode() -> None:
    result, _ = await run("Not found in the documents.", answer="generate", question=VULN_QUESTION,
                          evidence=VULN_EVIDENCE)
    assert result.answer.abstained


async def test_an_abstention_over_evidence_that_only_partly_matches_stands() -> None:
    question = "Which pseudo selector matches a dependency with a vulnerability reported last week by email?"
    result, _ = await run("Not found in the documents.", question=question, evidence=VULN_EVIDENCE)
    assert result.answer.abstained


def test_a_short_question_is_not_judged_by_word_overlap() -> None:
    question = "Who wrote it?"
    quote = extract_answer(question, EVIDENCE)
    assert quote is not None
    assert prefer_quote("The cache team wrote it.", question, EVIDENCE, quote) is None


def test_the_backing_is_the_sentence_holding_the_claim() -> None:
    assert backing_coverage("The cache file keeps files out [1].", QUESTION, EVIDENCE) == 0.25
    assert backing_coverage("A .npmignore file [1].", QUESTION, EVIDENCE) == 0.75
    # A claim no evidence sentence holds has no backing (the support check judges those).
    assert backing_coverage("The Makefile does.", QUESTION, EVIDENCE) is None


class CountingEmbedder:
    """Word-hash vectors; counts the texts it was asked to embed."""

    name, dim, max_tokens = "counting", 16, 256

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        self.texts += list(texts)
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                rows[i, sum(map(ord, word)) % self.dim] += 1.0
        return rows + 1e-3

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


async def run_embedded(reply: str, question: str = QUESTION,
                       evidence: list[ScoredChunk] = EVIDENCE) -> tuple[Generation, CountingEmbedder]:
    embedder = CountingEmbedder()
    ctx = RunContext(llm=ScriptedLLM([reply]), embedder=embedder)
    return await Generator(answer="auto").agenerate(question, evidence, ctx), embedder


async def test_a_well_backed_answer_stands_without_embedding_the_evidence_sentences() -> None:
    result, embedder = await run_embedded("A .npmignore file keeps files out of your package [1].")
    assert result.answer.mode == "generated"
    assert embedder.texts == []


async def test_an_abstention_over_partly_matching_evidence_stands_without_embedding() -> None:
    question = "Which pseudo selector matches a dependency with a vulnerability reported last week by email?"
    result, embedder = await run_embedded("Not found in the documents.", question=question, evidence=VULN_EVIDENCE)
    assert result.answer.abstained and embedder.texts == []


async def test_a_quote_that_may_win_is_still_ranked_with_embeddings() -> None:
    result, embedder = await run_embedded("The cache file keeps files out of your npm package [2].")
    assert result.answer.mode == "extracted" and result.events[-1].data["scoring"] == "words+embedding"
    assert any(".npmignore" in text for text in embedder.texts)


def test_the_word_check_never_rules_out_a_quote_that_would_win() -> None:
    # prefer_quote may only pick the quote where quote_could_win says it could.
    answers = [None, "The cache file keeps files out of your npm package [2].", "A .npmignore file [1].",
               "The Makefile does.", "npm keeps the cache in ~/.npm [2].", "The :outdated selector [2].",
               "The state east of Tennessee is North Carolina [2]."]
    for question, evidence in ((QUESTION, EVIDENCE), (VULN_QUESTION, VULN_EVIDENCE), ("Who wrote it?", EVIDENCE),
                               (COUNT_QUESTION, COUNT_EVIDENCE)):
        quote = extract_answer(question, evidence)
        assert quote is not None
        for answer in answers:
            if prefer_quote(answer, question, evidence, quote) is not None:
                assert quote_could_win(answer, question, evidence), (question, answer)
            if not quote_could_win(answer, question, evidence):
                assert prefer_quote(answer, question, evidence, quote) is None


COUNT_QUESTION = "How many Publix stores are in the state that borders the east of the state where Hank Snow died?"
PUBLIX = ("Publix Super Markets, Inc. is an employee-owned American supermarket chain headquartered in Lakeland, "
          "Florida. Publix operates throughout the Southeastern United States, with locations in Florida (785), "
          "Georgia (186), Alabama (68), South Carolina (58), Tennessee (42), North Carolina (35), and Virginia (8).")
SNOW = "Hank Snow was a country music artist. He died at his home in Madison, Tennessee, in 1999."
COUNT_EVIDENCE = [
    evidence_chunk("publix", "publix", 0, PUBLIX, "publix.txt"),
    evidence_chunk("snow", "snow", 0, SNOW, "snow.txt"),
]


async def test_an_answer_without_the_number_asked_for_gives_way_to_the_quote() -> None:
    # Qwen2.5-0.5B on a MuSiQue question: it answers a step on the way (the state), not the count.
    result, llm = await run("The state that borders the east of Tennessee is North Carolina [1].",
                            question=COUNT_QUESTION, evidence=COUNT_EVIDENCE)
    answer = result.answer
    assert answer.mode == "extracted" and len(llm.requests) == 1
    assert "North Carolina (35)" in answer.text and answer.citations[0].chunk_id == "publix"
    assert "asks for a number" in result.events[-1].message


async def test_an_answer_stating_a_number_stands() -> None:
    for reply in ("North Carolina has 35 Publix stores [1].", "Thirty-five stores, in North Carolina [1]."):
        result, _ = await run(reply, question=COUNT_QUESTION, evidence=COUNT_EVIDENCE)
        assert result.answer.mode == "generated", reply


def test_a_quote_without_a_number_does_not_replace_one_without_either() -> None:
    evidence = [evidence_chunk("snow", "snow", 0, SNOW, "snow.txt")]
    question = "How many stores did Hank Snow open in Madison, Tennessee?"
    quote = extract_answer(question, evidence)
    assert quote is not None and "1999" in quote.text  # the quote states a number: it may replace
    assert prefer_quote("Hank Snow opened stores in Madison [1].", question, evidence, quote) is not None
    no_number = [ScoredChunk(chunk=Chunk(id="c", doc_id="c", position=0, source="c.txt",
                                         text="Hank Snow opened stores in Madison, Tennessee, with his family."))]
    quote = extract_answer(question, no_number)
    assert quote is not None
    assert prefer_quote("Hank Snow opened stores in Madison [1].", question, no_number, quote) is None


YEAR_QUESTION = "The Women's National Basketball League includes the Adelaide team that was formed in what year?"
LIGHTNING = ("Adelaide Lightning\n\nThe Adelaide Lightning are an Australian professional women's basketball team "
             "competing in the Women's National Basketball League (WNBL). The club is based in the city of Adelaide, "
             "South Australia. The club was formed in 1993 and they play in the 8,000-seat Titanium Security Arena.")
WNBL = ("Women's National Basketball League\n\nThe Women's National Basketball League (WNBL) is the pre-eminent "
        "professional women's basketball league in Australia. It is currently composed of eight teams.")
YEAR_EVIDENCE = [
    evidence_chunk("lightning", "lightning", 0, LIGHTNING, "lightning.txt"),
    evidence_chunk("wnbl", "wnbl", 0, WNBL, "wnbl.txt"),
]


async def test_an_answer_with_the_number_asked_for_stands_against_a_quote_without_one() -> None:
    # Qwen2.5-0.5B on a HotpotQA question: the year comes from the evidence; the best-matching
    # sentence names the team and its league but no year.
    result, _ = await run("The Women's National Basketball League includes the Adelaide team that was formed in 1993 [1].",
                          question=YEAR_QUESTION, evidence=YEAR_EVIDENCE)
    assert result.answer.mode == "generated"
    assert "1993" in result.answer.text
