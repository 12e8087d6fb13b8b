"""bench_ask reads the end of the printout from what a terminal shows, styled as rich prints it."""

from __future__ import annotations

import io

import pytest

from tests.evaluate.eval_scripts import load_eval_script


@pytest.fixture(scope="module")
def bench():
    return load_eval_script("bench_ask")


def styled_usage_line() -> bytes:
    """The usage line as ``ragpipe ask`` prints it to a terminal (rich highlights numbers and brackets)."""
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=400)
    console.print("[dim]3 LLM call(s), 1534 prompt + 199 completion tokens, 6.10 s (retrieve 0.19, "
                  "meteora 1.54, verify 2.40, generate 1.97)[/dim]")
    return screen.getvalue().encode()


def test_the_usage_line_is_found_through_the_terminal_styling(bench):
    answer = b"The default value is notice [1].\n"
    usage = styled_usage_line()
    assert b" LLM call(s), " not in usage  # the styling splits the words apart
    out = answer + usage
    half = len(answer) + len(usage) // 2
    arrivals = [(len(answer), 1.5), (half, 2.0), (len(out), 2.5)]
    assert bench.printed_at(out, arrivals) == 2.5
    parsed = bench.USAGE.search(bench.screen_text(out))
    assert parsed is not None and parsed[1] == "3" and parsed[3] == "199"


def test_a_printout_without_a_usage_line_has_no_end_time(bench):
    out = b"error: no documents\n"
    assert bench.printed_at(out, [(len(out), 0.4)]) is None


def test_a_usage_line_cut_before_its_closing_bracket_is_not_complete(bench):
    usage = styled_usage_line()
    cut = usage.rindex(b")")
    arrivals = [(cut, 1.0), (len(usage), 1.2)]
    assert bench.printed_at(usage, arrivals) == 1.2


def test_the_verifier_cost_is_what_it_adds_to_each_ask(bench) -> None:
    def run(wall: float, verify: float | None = None, rc: int = 0) -> dict:
        return {"rc": rc, "wall_s": wall, "nodes": {} if verify is None else {"verify": verify}}

    cost = bench.verifier_cost([run(10.0, 4.0), run(8.0, 3.0), run(9.0, 2.0, rc=1)], [run(8.0), run(7.0), run(5.0)])
    assert cost["questions"] == 2 and cost["per_question_s"] == [2.0, 1.0]
    assert cost["seconds_median"] == 1.5 and cost["share_of_wall_median"] == round((0.2 + 0.125) / 2, 3)
    assert cost["node_share_of_wall_median"] == round((0.4 + 0.375) / 2, 3)
