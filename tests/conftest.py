"""Shared fixtures: a scripted LLM, a run context, and offline/telemetry-free environment."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Never reach a hub or send telemetry from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# ONNX query-encoder exports go to a per-session folder (shared with the CLI subprocesses).
_ENCODER_CACHE = tempfile.mkdtemp(prefix="ragpipe-encoders-")
os.environ.setdefault("RAGPIPE_EMBEDDING__ENCODER_CACHE", _ENCODER_CACHE)
atexit.register(shutil.rmtree, _ENCODER_CACHE, True)


@pytest.fixture
def scripted_llm():
    from ragpipe.llm.scripted import ScriptedLLM

    return ScriptedLLM()


@pytest.fixture
def run_context(scripted_llm):
    from ragpipe.context import RunContext

    return RunContext(llm=scripted_llm)
