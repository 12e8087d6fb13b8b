"""The evidence-support check on fluent answers small models really gave (SmolLM2-135M, Qwen2.5-0.5B)."""

from __future__ import annotations

import pytest

from ragpipe.generate.degenerate import degenerate_reason
from ragpipe.generate.support import missing_literal, unsupported_reason
from ragpipe.schema import Chunk, ScoredChunk


def chunk(text: str, ident: str = "c1") -> ScoredChunk:
    return ScoredChunk(chunk=Chunk(id=ident, doc_id=ident, position=0, source=f"{ident}.html", text=text))


LOGGING = chunk("Setting the log level. To turn off logs completely set --logs-max=0 . Log files are written "
                "to the _logs directory inside the npm cache.", "logging")
SCRIPTS = chunk("If there is a server.js file in the root of your package, then npm will default the start "
                "command to node server.js . prestart and poststart will still run in this case.", "scripts")
SCOPE = chunk("As of 2015-04-19, and with npm 2.0 or better, the primary npm registry does support scoped "
              "packages. Scoped packages can be published from the CLI as of npm@2.", "scope")
NOLAN = chunk("Christopher Nolan is an English-American film director. He directed Inception (2010).", "nolan")
ENV = chunk("The npm_package_json environment variable provides the path to the package.json file.", "env")
PACKAGE = chunk("Scripts can read their package.json. The npm_package_json environment variable provides the "
                "path to the package.json file. See package.json for more on package configs.", "package")
CHURCH = chunk("In the Church of England, the ecclesiastical courts still have jurisdiction of certain "
               "church-related matters, such as discipline of clergy and alteration of church property.", "church")


@pytest.mark.parametrize(
    "question, answer, evidence, reason",
    [
        # SmolLM2 invents a flag: every other word is from the logging page.
        ("How do you turn off npm's log files completely?",
         "To turn off npm's log files completely, you can use the -f option [1].", [LOGGING],
         "states '-f', which the evidence does not hold"),
        # A year the evidence does not give.
        ("As of which date does the primary npm registry support scoped packages?",
         "The primary npm registry supports scoped packages as of 2014-09-03 [1].", [SCOPE],
         "states '2014-09-03', which the evidence does not hold"),
        # SmolLM2 on MuSiQue: fluent, and the answer word is nowhere in the evidence.
        ("What is the term for the institution allowing church courts to have functions in secular society?",
         "The term for the institution allowing church courts to have relevant functions in secular society is "
         "secularism [1].", [CHURCH], "shares almost no words with the evidence"),
        # A name the evidence does not hold.
        ("Which country is the director of Inception from?",
         "The director of Inception is from Canada [1].", [NOLAN], "states 'Canada', which the evidence does not hold"),
        # Every word of the question is on the page; the words that answer it are not.
        ("What does Christopher Nolan do for a living?",
         "Christopher Nolan works as a dentist and a pilot [1].", [NOLAN],
         "what it adds to the question is not in the evidence"),
        # Qwen: a sentence copied from the page, but not the one about what was asked.
        ("Which environment variable gives the path to the package.json file?",
         "See package.json for more on package configs [1].", [PACKAGE],
         "rests on evidence about something other than the question"),
        ("How many records has the singer sold?", "She has sold more than 2,000,000 records [1].",
         [chunk("The English pop singer has sold more than 1,000,000 records worldwide.")],
         "states '2,000,000', which the evidence does not hold"),
        # Inline code the model made up.
        ("Which environment variable gives the path to the package.json file?",
         "The environment variable is `npm_config_path` [1].", [ENV],
         "states 'npm_config_path', which the evidence does not hold"),
    ],
)
def test_fluent_unsupported_answers_are_named(question: str, answer: str, evidence: list[ScoredChunk],
                                              reason: str) -> None:
    assert unsupported_reason(answer, question, evidence) == reason
    assert degenerate_reason(answer, question, evidence) == reason  # and the generator acts on it


@pytest.mark.parametrize(
    "question, answer, evidence",
    [
        ("How do you turn off npm's log files completely?", "Set --logs-max=0 [1].", [LOGGING]),
        ("What does npm start run by default when the package root has a server.js file?",
         "npm will default the start command to node server.js [1].", [SCRIPTS]),
        # Qwen: every literal (date, version) is on the page.
        ("As of which npm version can scoped packages be published and installed?",
         "As of 2015-04-19 and with npm 2.0 or better, the primary npm registry does support scoped packages [1].",
         [SCOPE]),
        # A yes/no answer restating the question adds nothing to hold against it.
        ("Do church courts still have jurisdiction of church-related matters?", "Yes, they do [1].", [CHURCH]),
        # One added word cannot be judged by overlap; the meta sentence after the answer is not the answer.
        ("What do the ecclesiastical courts still decide?",
         "Discipline [1]. The documents do not say more about the other courts.", [CHURCH]),
        # The answer's own words are few, but the sentence backing it is the one about the question.
        ("Which environment variable gives the path to the package.json file?",
         "It is npm_package_json [1].", [PACKAGE]),
        # Abbreviations and hyphenated words are not literals.
        ("What do the ecclesiastical courts still decide?",
         "Church-related matters, e.g. the discipline of clergy [1].", [CHURCH]),
    ],
)
def test_supported_answers_pass(question: str, answer: str, evidence: list[ScoredChunk]) -> None:
    assert unsupported_reason(answer, question, evidence) is None


def test_a_literal_the_question_holds_is_not_held_against_the_answer() -> None:
    question = "What does npm start run when the package has a server.js file?"
    assert missing_literal("It runs server.js [1].", question, [LOGGING]) is None
    assert missing_literal("It runs index.js [1].", question, [LOGGING]) == "index.js"


def test_a_number_must_occur_as_a_whole_token() -> None:
    evidence = [chunk("Florida has the largest number of stores, with 1787 in all.")]
    assert missing_literal("There are 787 stores [1].", "How many stores are in Florida?", evidence) == "787"
    assert missing_literal("There are 1787 stores [1].", "How many stores are in Florida?", evidence) is None


def test_an_opening_that_only_restates_the_question_is_not_an_answer_even_with_more_after_it() -> None:
    # SmolLM2: the question as a statement, then a paragraph about "the document".
    answer = ("The team is every npm org automatically given [1].\n\nThe document contains a list of team "
              "members, and the document also contains a list of team members [2].")
    evidence = [chunk("Each org is automatically given a developers team, so you can see the whole list of team "
                      "members in your org.")]
    assert degenerate_reason(answer, "Which team is every npm org automatically given?", evidence) == \
        "repeats the question"
