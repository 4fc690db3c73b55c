"""Hostile input: the bounds a submission is checked against, and text outputs made inert on a terminal."""

from __future__ import annotations

import pytest

from oar_celery.cli.common import escape_controls, escaped, terminal_safe
from oar_celery.protocol.limits import Limits, filter_depth, limit_problem

LIMITS = Limits(max_command_size=100, max_walltime=48 * 3600, max_filter_depth=3, max_array_size=50)


def _problem(**fields: object) -> str | None:
    return limit_problem({"user": "alice", "command": "true", "resources": ["/core=1"], **fields}, LIMITS)


def test_an_ordinary_submission_is_within_every_limit() -> None:
    assert _problem(name="sweep-1", resources=["{mem > 4}/nodes=1/core=2,walltime=48:00:00"],
                    properties="(cpu = 1 OR (host = 'a(b'))", command="for i in 1 2; do\n\techo $i\ndone") is None


@pytest.mark.parametrize("fields,words", [
    ({"command": "x" * 101}, ("101 bytes", "limit of 100", "OAR_MAX_COMMAND_SIZE")),
    ({"command": "é" * 51}, ("102 bytes",)),
    ({"resources": ["/core=1,walltime=48:00:01"]}, ("48 hours", "OAR_MAX_WALLTIME")),
    ({"resources": ["/core=1", "/core=2,walltime=" + "9" * 5000]}, ("OAR_MAX_WALLTIME",)),
    ({"properties": "((((cpu = 1))))"}, ("deeper than 3", "OAR_MAX_FILTER_DEPTH")),
    ({"resources": ["{(((cpu=1)))}/core=1"]}, ("OAR_MAX_FILTER_DEPTH",)),
    ({"name": "a\nb"}, ("name", "\\x0a")),
    ({"project": "p\x1b[2J"}, ("project", "\\x1b")),
    ({"command": "echo \x1b]0;x\x07"}, ("command", "\\x1b", "only tab and newline")),
    ({"types": ["besteffort\r"]}, ("types", "\\x0d")),
    ({"array": 51}, ("array of 51 jobs", "limit of 50", "OAR_MAX_ARRAY_SIZE")),
    ({"array": 10, "array_params": ["p"] * 60}, ("array of 60 jobs", "OAR_MAX_ARRAY_SIZE")),
])
def test_each_limit_is_refused_in_one_line_naming_it(fields: dict[str, object], words: tuple[str, ...]) -> None:
    problem = _problem(**fields)
    assert problem is not None and "\n" not in problem
    for word in words:
        assert word in problem, problem


def test_quoted_parentheses_do_not_count_as_nesting() -> None:
    assert filter_depth("host = '((((((' AND (cpu = 1)") == 1


def test_a_non_dict_request_is_left_to_admission() -> None:
    assert limit_problem(["not", "a", "request"], LIMITS) is None


def test_control_characters_of_user_fields_print_escaped() -> None:
    assert escape_controls("two\nlines\x1b[2J\t\x9b") == "two\\nlines\\x1b[2J\\t\\x9b"
    assert escaped({"name": "a\nb", "ids": [1, "c\x07"]}) == {"name": "a\\nb", "ids": [1, "c\\x07"]}
    assert terminal_safe("col1\tcol2\nrow \x1b[31mred") == "col1\tcol2\nrow \\x1b[31mred"
