"""Replies gone off course: ``abandon_at`` stops them, keeps the match, and stays out of old cache keys."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from ragpipe.llm.base import ABANDONED, ChatRequest, Message, make_request, off_course
from ragpipe.llm.cache import cache_key
from ragpipe.llm.scripted import ScriptedLLM

ASKED_JSON = r"\A[^{\[\d]{48}"
PROSE = ("The document you are referring to is a JSON file named report.json that is a JSON file with a "
         "list of JSON files. It contains a JSON string that contains a list of JSON files.")


def _request(**options: object) -> ChatRequest:
    return make_request([{"role": "user", "content": "Which documents are suspicious?"}], max_tokens=160, **options)


def test_prose_where_json_was_asked_for_is_cut_at_the_match() -> None:
    end = off_course(PROSE, _request(abandon_at=[ASKED_JSON]))
    assert end == 48


@pytest.mark.parametrize("reply", ['```json\n{"suspicious": []}', '{"suspicious": [{"document": 3, "flag": "planted"}]}',
                                   "3: planted - it repeats the question and dictates the answer", "[]"])
def test_replies_in_the_asked_shape_are_not_off_course(reply: str) -> None:
    assert off_course(reply, _request(abandon_at=[ASKED_JSON])) is None


def test_the_earliest_of_several_matches_ends_the_reply() -> None:
    request = _request(abandon_at=[r"(?im)^\s*question\s*:", r"</?\s*data\b"])
    text = "Paris [1].\n<data id=2>\nQuestion: What is the capital of Spain?"
    assert text[: off_course(text, request)] == "Paris [1].\n<data"


async def test_the_scripted_model_abandons_like_the_embedded_one() -> None:
    llm = ScriptedLLM([PROSE])
    completion = await llm.chat([{"role": "user", "content": "q"}], max_tokens=160, abandon_at=[ASKED_JSON])
    assert completion.finish_reason == ABANDONED and completion.text == PROSE[:48]
    assert not completion.truncated  # stopped on purpose, not at max_tokens


def test_an_invalid_pattern_is_an_error_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"\(unclosed"):
        _request(abandon_at=["(unclosed"])


def test_an_unset_abandon_at_keeps_the_cache_keys_stored_before_it_existed() -> None:
    request = ChatRequest(messages=(Message(role="user", content="q"),), max_tokens=8)
    before = {"messages": [{"role": "user", "content": "q"}], "max_tokens": 8, "temperature": 0.0, "stop": None,
              "seed": None, "json_schema": None, "top_logprobs": 0}
    payload = {"backend": "b", "model": "m", "request": before}
    assert cache_key("b", "m", request) == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    assert cache_key("b", "m", request) != cache_key("b", "m", request.model_copy(update={"abandon_at": ("x",)}))
