"""Prompt budgets: the backend's own templated token count decides whether a prompt fits."""

from __future__ import annotations

from ragpipe.llm.base import Capabilities, Message
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.select.budget import fit_prompt, prompt_tokens


class TemplatedLLM(ScriptedLLM):
    """A backend whose chat template adds 40 tokens and whose tokenizer splits every word in two."""

    def count_tokens(self, text: str) -> int:
        return 2 * super().count_tokens(text)

    def prompt_tokens(self, messages):  # noqa: ANN001 - the embedded backend's signature
        return [0] * (40 + sum(self.count_tokens(m.content) for m in messages))


def render(passages: list[str]) -> list[Message]:
    return [Message(role="user", content="Rank these:\n" + "\n".join(passages))]


def test_the_templated_count_is_used_when_the_backend_has_one():
    llm = TemplatedLLM(capabilities=Capabilities(context_window=400))
    messages = render(["one two three"])
    assert prompt_tokens(llm, messages) == 40 + 2 * 5
    assert prompt_tokens(ScriptedLLM(), messages) == 5 + 8  # parts plus a per-message allowance


def test_passages_are_cut_until_the_real_prompt_fits():
    llm = TemplatedLLM(capabilities=Capabilities(context_window=400))
    passages = [" ".join(f"w{k}" for k in range(100)) for _ in range(4)]
    fitted = fit_prompt(render, passages, llm, max_words=300, output_tokens=50)
    assert fitted.fits and fitted.truncated == 4
    assert len(llm.prompt_tokens(fitted.messages)) <= 400 - 50


def test_fit_leading_keeps_the_longest_prefix_whose_rendered_prompt_fits():
    from ragpipe.llm.base import Capabilities, Message
    from ragpipe.llm.scripted import ScriptedLLM
    from ragpipe.select.budget import MESSAGE_OVERHEAD_TOKENS, fit_leading

    items = ["one two three four five"] * 6  # five words each, counted as five tokens
    llm = ScriptedLLM(capabilities=Capabilities(context_window=100))

    def render(k: int) -> list[Message]:
        return [Message(role="user", content="Evidence: " + " | ".join(items[:k]))]

    # budget 100 - 60 = 40 tokens: 8 message overhead + "Evidence:" + 5 per item + 1 per separator
    fitted = fit_leading(render, len(items), llm, output_tokens=60)
    assert fitted.prompt_tokens <= fitted.budget == 40
    assert fitted.kept == max(k for k in range(7) if MESSAGE_OVERHEAD_TOKENS + 1 + 5 * k + max(0, k - 1) <= 40)
    assert fit_leading(render, len(items), llm, output_tokens=95).kept == 0  # not even the frame fits


def test_fit_leading_renders_once_when_everything_fits_and_agrees_with_the_search():
    from ragpipe.llm.base import Capabilities, Message
    from ragpipe.llm.scripted import ScriptedLLM
    from ragpipe.select.budget import fit_leading, prompt_tokens

    items = ["one two three four five"] * 6
    llm = ScriptedLLM(capabilities=Capabilities(context_window=100))
    rendered: list[int] = []

    def render(k: int) -> list[Message]:
        rendered.append(k)
        return [Message(role="user", content="Evidence: " + " | ".join(items[:k]))]

    roomy = fit_leading(render, len(items), llm, output_tokens=10)
    assert roomy.kept == 6 and rendered == [6]
    for output_tokens in range(0, 100, 7):  # every budget: the longest prefix that fits, as before
        fitted = fit_leading(render, len(items), llm, output_tokens=output_tokens)
        fits = [k for k in range(7) if prompt_tokens(llm, render(k)) <= fitted.budget]
        assert fitted.kept == max(fits, default=0)
