"""The in-process backend stops a generation that has started repeating one line."""

from __future__ import annotations

import pytest

from ragpipe.llm.llamacpp import looping, pending_stop

LINE = "The logs-dir is a directory named _logs inside the npm cache."


def test_three_identical_lines_in_a_row_are_a_loop() -> None:
    assert looping(f"{LINE}\n{LINE}\n{LINE}\n")
    assert looping(f"Answer:\n{LINE}\n\n{LINE}\n{LINE}\nThe")  # blank lines between copies do not hide it


def test_two_copies_or_an_unfinished_third_are_not_yet_a_loop() -> None:
    assert not looping(f"{LINE}\n{LINE}\n")
    assert not looping(f"{LINE}\n{LINE}\n{LINE[:30]}")


def test_short_lines_that_repeat_on_purpose_are_not_a_loop() -> None:
    assert not looping("|---|---|\n|---|---|\n|---|---|\n")
    assert not looping("- [ ]\n- [ ]\n- [ ]\n")
    assert not looping(f"{LINE}\nAnother sentence that differs.\n{LINE}\n{LINE}\n")


@pytest.mark.parametrize("text, held", [
    ("Paris [1].\nQues", len("\nQues")),
    ("Paris [1].", 0),
    ("Paris [1]. <", 1),
    ("Paris [1].\n", 1),
])
def test_streamed_text_holds_back_what_could_start_a_stop_string(text: str, held: int) -> None:
    assert pending_stop(text, ["\nQuestion:", "<data"]) == held
    assert pending_stop(text, None) == 0
