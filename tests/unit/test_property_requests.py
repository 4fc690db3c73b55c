"""oarproperty's head request refuses, before any database work, what a forged message may carry."""

from __future__ import annotations

import pytest

from oar_celery.head.properties import name_problem, property_task


def test_a_user_who_is_not_admin_is_refused_first() -> None:
    assert property_task("alice", deletes=["gpu"]) == {
        "error": "only root or oar may change resource properties, not alice"
    }


@pytest.mark.parametrize("fields", [
    {"adds": "abc"},                      # a bare string would be three columns a, b and c
    {"deletes": [1]},
    {"renames": [["only-one"]]},
    {"renames": "old,new"},
])
def test_a_malformed_request_is_refused_in_one_line(fields: dict[str, object]) -> None:
    answer = property_task("root", **fields)  # type: ignore[arg-type]
    assert set(answer) == {"error"} and "\n" not in answer["error"]  # type: ignore[typeddict-item]


@pytest.mark.parametrize("name", ["Robert'); DROP TABLE jobs;--", "state", "resource_id", "and", "1abc", "x" * 64])
def test_a_name_that_cannot_be_a_property_column_is_refused(name: str) -> None:
    assert name_problem(name)
