"""Prepared statements: ``:name`` parameters become positional, each one listed."""

from __future__ import annotations

import pytest

from oar_celery.db.prepared import Prepared


def test_parameters_become_positional_in_the_listed_order() -> None:
    parameters = [("a", "integer[]"), ("ab", "text"), ("b", "integer")]
    statement = Prepared("oar_test", "SELECT :b, :a, :ab, CAST(:a AS integer[])", parameters)
    assert statement.prepare == (
        "PREPARE oar_test (integer[], text, integer) AS SELECT $3, $1, $2, CAST($1 AS integer[])"
    )


def test_a_parameter_left_out_of_the_list_is_refused() -> None:
    with pytest.raises(ValueError, match="oar_test: a parameter"):
        Prepared("oar_test", "SELECT :a, :forgotten", [("a", "integer")])
