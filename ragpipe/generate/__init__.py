"""Answer generation with validated ``[n]`` citations, abstention, and streaming."""

from ragpipe.generate.abstain import NOT_FOUND_TEXT
from ragpipe.generate.citations import resolve_citations
from ragpipe.generate.generator import AnswerEvent, Generation, Generator, TokenEvent

__all__ = ["NOT_FOUND_TEXT", "AnswerEvent", "Generation", "Generator", "TokenEvent", "resolve_citations"]
