"""Walltimes, ``-l`` requests and property filters: accepted forms and refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oar_celery.scheduler import (
    Level,
    RequestError,
    ResourceGroup,
    compile_filter,
    parse_moldables,
    parse_resource_request,
    parse_walltime,
)

LABELS = ("resource_id", "network_address", "cpu", "core", "switch", "host")
COLUMNS = {
    "mem": "int",
    "gpu": "str",
    "host": "str",
    "cpufreq": "float",
    "resource_id": "int",
    "network_address": "str",
}


def parse(text: str):
    return parse_resource_request(text, default_walltime=7200, hierarchy_labels=LABELS)


# -- walltime --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1", 3600), ("1:30", 5400), ("1:30:00", 5400), ("0:0:1", 1), ("48:00:00", 172800), (" 2 ", 7200)],
)
def test_walltime_forms(text: str, seconds: int) -> None:
    assert parse_walltime(text) == seconds


@pytest.mark.parametrize("text", ["abc", "-1", "", "1:2:3:4", "0", "0:0:0", "1:-5", "1:a", ":", "1.5"])
def test_walltime_refusals(text: str) -> None:
    with pytest.raises(RequestError) as error:
        parse_walltime(text)
    assert "\n" not in str(error.value)


# -- -l requests -----------------------------------------------------------------------------------


def test_full_request_with_two_groups() -> None:
    moldable = parse("/switch=1/nodes=2/core=4+{gpu='YES'}/core=1,walltime=1:30:00")
    assert moldable.walltime == 5400
    assert moldable.groups == (
        ResourceGroup((Level("switch", 1), Level("network_address", 2), Level("core", 4))),
        ResourceGroup((Level("core", 1),), "gpu='YES'"),
    )


@pytest.mark.parametrize(
    ("text", "levels", "walltime"),
    [
        ("nodes=2,walltime=1", (Level("network_address", 2),), 3600),
        ("/core=4", (Level("core", 4),), 7200),
        ("/resource_id=3", (Level("resource_id", 3),), 7200),
        ("core=ALL", (Level("core", "ALL"),), 7200),
        ("/nodes=BEST/core=2", (Level("network_address", "BEST"), Level("core", 2)), 7200),
        ("/host=1", (Level("host", 1),), 7200),
        ("walltime=0:10", (Level("resource_id", 1),), 600),
    ],
)
def test_request_forms(text: str, levels: tuple[Level, ...], walltime: int) -> None:
    moldable = parse(text)
    assert moldable.groups == (ResourceGroup(levels),)
    assert moldable.walltime == walltime


def test_filter_group() -> None:
    moldable = parse("{mem > 64}/nodes=1")
    assert moldable.groups == (ResourceGroup((Level("network_address", 1),), "mem > 64"),)


def test_filter_with_comma_and_plus_inside() -> None:
    moldable = parse("{host IN ('a+b', 'c,d')}/nodes=1,walltime=2")
    assert moldable.groups[0].property_filter == "host IN ('a+b', 'c,d')"
    assert moldable.walltime == 7200


@pytest.mark.parametrize(
    "text",
    [
        "/nodes=two",
        "/nodes=2/",
        "nodes=0",
        "/=2",
        "",
        "   ",
        "/foo=1",
        "nodes=-1",
        "nodes=2,walltime=abc",
        "nodes=2,walltime=0",
        "nodes=2,mem=3",
        "{mem > 1/nodes=1",
        "mem > 1}/nodes=1",
        "{1=1; DROP TABLE jobs}/nodes=1",
        "/nodes=1+",
        "/nodes=1/nodes=2",
        "nodes",
        "/nodes=1{mem>2}",
        "nodes=1,walltime=1,walltime=2",
        "nodes=1\nnodes=2",
    ],
)
def test_request_refusals(text: str) -> None:
    with pytest.raises(RequestError) as error:
        parse(text)
    assert "\n" not in str(error.value)


def test_unknown_resource_type_message() -> None:
    with pytest.raises(RequestError, match="unknown resource type 'foo' in -l"):
        parse("/foo=3")


def test_columns_are_checked_when_given() -> None:
    with pytest.raises(RequestError, match="unknown property 'disk'"):
        parse_resource_request("{disk > 1}/nodes=1", default_walltime=60, hierarchy_labels=LABELS, columns=COLUMNS)


def test_moldables_are_numbered() -> None:
    moldables = parse_moldables(
        ["nodes=2,walltime=2", "nodes=4,walltime=1"], default_walltime=60, hierarchy_labels=LABELS
    )
    assert [m.moldable_id for m in moldables] == [0, 1]
    assert [m.walltime for m in moldables] == [7200, 3600]


def test_no_option_means_one_resource() -> None:
    (moldable,) = parse_moldables([], default_walltime=60, hierarchy_labels=LABELS)
    assert moldable.groups == (ResourceGroup((Level("resource_id", 1),)),)
    assert moldable.walltime == 60


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_is_refused_on_one_line(text: str) -> None:
    try:
        parse(text)
    except RequestError as error:
        assert "\n" not in str(error)


# -- property filters ------------------------------------------------------------------------------

NODE = {
    "mem": 64,
    "gpu": "YES",
    "host": "node-1",
    "cpufreq": 2.6,
    "resource_id": 7,
    "network_address": "node-1",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mem > 32", True),
        ("mem >= 64 AND gpu = 'YES'", True),
        ("mem < 64", False),
        ("mem <= 64 and not gpu = 'NO'", True),
        ("gpu != 'YES' OR mem <> 64", False),
        ("(mem = 1 or mem = 64) and (gpu = 'YES')", True),
        ("host IN ('node-1', 'node-2')", True),
        ("host NOT IN ('node-1')", False),
        ("host LIKE 'node-%'", True),
        ("host LIKE 'node-_'", True),
        ("host LIKE 'node_'", False),
        ("host NOT LIKE 'x%'", True),
        ('gpu = "YES"', True),
        ("cpufreq > 2.5", True),
        ("cpufreq > 2", True),
        ("mem = '64'", True),
        ("mem > -1", True),
        ("64 = mem", True),
        ("1 = 1", True),
        ("resource_id IN (1, 7)", True),
        ("NOT (mem > 1)", False),
        ("MEM > 1", True),
    ],
)
def test_filter_semantics(text: str, expected: bool) -> None:
    assert compile_filter(text, COLUMNS).matches(NODE) is expected


def test_quote_escaping() -> None:
    assert compile_filter("host = 'it''s'", COLUMNS).matches({"host": "it's"})
    assert not compile_filter("host = 'it''s'", COLUMNS).matches({"host": "it"})


def test_missing_property_matches_neither_way() -> None:
    assert not compile_filter("mem > 1", COLUMNS).matches({})
    assert not compile_filter("NOT mem > 1", COLUMNS).matches({})


def test_used_columns() -> None:
    assert compile_filter("mem > 1 and gpu = 'YES'", COLUMNS).columns == {"mem", "gpu"}


@pytest.mark.parametrize("text", [None, "", "   "])
def test_empty_filter_matches_everything(text: str | None) -> None:
    assert compile_filter(text, COLUMNS).matches({})


@pytest.mark.parametrize(
    "text",
    [
        "1=1; DROP TABLE jobs",
        "mem > 1;",
        "mem IN (SELECT mem FROM resources)",
        "SELECT 1",
        "mem > (select 1)",
        "lower(host) = 'a'",
        "mem > 1 -- comment",
        "mem > 1 /* x */",
        "(mem > 1",
        "mem > 1)",
        "((mem > 1)",
        "mem > 1 gpu",
        "mem >",
        "> 1",
        "unknown = 1",
        "mem = 'abc'",
        "host = 'unterminated",
        "mem > 1 AND",
        "mem IN ()",
        "mem IN (gpu)",
        "host LIKE 3",
        "mem ! 3",
        "mem > 1 OR 1=1 UNION SELECT password",
        "mem > 1\nOR 1=1",
        "host = `x`",
        "mem > 1e",
    ],
)
def test_filter_refusals(text: str) -> None:
    with pytest.raises(RequestError) as error:
        compile_filter(text, COLUMNS)
    assert "\n" not in str(error.value)


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="mem gpu()=<>!'\";-ANDORTIN,LIKE%_0123456789.", max_size=30))
def test_filter_fuzz_never_crashes(text: str) -> None:
    try:
        compiled = compile_filter(text, COLUMNS)
    except RequestError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(compiled.matches(NODE), bool)
        assert ";" not in text


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=30))
def test_filter_fuzz_any_text(text: str) -> None:
    try:
        compile_filter(text, COLUMNS).matches(NODE)
    except RequestError as error:
        assert "\n" not in str(error)


def test_unicode_digits_are_refused_cleanly() -> None:
    with pytest.raises(RequestError):
        compile_filter("mem > ²", COLUMNS)
