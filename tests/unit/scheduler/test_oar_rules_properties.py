"""OAR3's resource-type and dependency rules, as properties over random inputs (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from oar_celery.scheduler import Job, Resource, check_satisfiable, parse_moldables, schedule, timeshare_key
from oar_celery.scheduler.dependencies import Verdict, blocked_message, verdict
from oar_celery.scheduler.resource_types import mentions_type

NOW = 100_000
TYPES = ["default", "default", "token", "licence"]
COLUMNS = {"core": "int", "type": "str", "resource_id": "int", "network_address": "str"}
STATES = ["Waiting", "Hold", "toLaunch", "Launching", "Running", "Suspended", "Finishing", "Terminated", "Error"]


@st.composite
def typed_clusters(draw: st.DrawFn) -> list[Resource]:
    """Resources of random types; some have no ``type`` property at all (they count as default)."""
    count = draw(st.integers(1, 8))
    resources = []
    for rid in range(1, count + 1):
        props: dict[str, object] = {"core": rid}
        kind = draw(st.sampled_from([*TYPES, None]))
        if kind is not None:
            props["type"] = kind
        resources.append(Resource(id=rid, network_address=f"n{rid}", properties=props))
    return resources


def _kind(resource: Resource) -> str:
    return str(resource.properties.get("type", "default"))


@settings(max_examples=150, deadline=None)
@given(typed_clusters(), st.integers(1, 8), st.sampled_from([None, "type = 'token'", "core >= 2"]))
def test_oar3_a_job_without_type_only_gets_default_resources(resources: list[Resource], count: int,
                                                              job_filter: str | None) -> None:
    """OAR3 get_data_jobs: no 'type' in the job's or group's filter means type = 'default' only."""
    moldables = parse_moldables([f"/resource_id={count}"], default_walltime=60, hierarchy_labels=("resource_id",))
    job = Job(id=1, moldables=moldables, properties_filter=job_filter)
    result = schedule(NOW, resources, [], [job], security_time=0, columns=COLUMNS)
    wanted = "token" if job_filter and "type" in job_filter else "default"
    eligible = [r for r in resources if _kind(r) == wanted and (job_filter != "core >= 2" or r.id >= 2)]
    if len(eligible) >= count:
        (placement,) = result.placements
        assert {r.id for r in eligible} >= set(placement.resource_ids)
    else:
        assert 1 in result.unplaceable
    # admission counts the same way
    fits = check_satisfiable(moldables, resources, job_filter, columns=COLUMNS) is None
    assert fits == (len(eligible) >= count)


@given(st.sampled_from(["type = 'x'", "type IN ('a')", "mem > 1 AND type != 'b'", "(type = 'x')"]))
def test_oar3_any_filter_naming_type_lifts_the_default(text: str) -> None:
    """A filter that reads the type column decides the types itself."""
    assert mentions_type(text) and mentions_type(None, text)


@given(st.sampled_from(["mem > 1", "prototype = 'x'", "network_address = 'type'", None, ""]))
def test_oar3_a_filter_not_naming_type_keeps_the_default(text: str | None) -> None:
    """Only the column counts, not the word inside a name or a string."""
    assert not mentions_type(text)


@given(st.sampled_from(STATES), st.one_of(st.none(), st.integers(0, 255).map(lambda code: code << 8),
                                          st.integers(1, 64)))
def test_oar3_dependency_rules(state: str, exit_code: int | None) -> None:
    """OAR3 kao/scheduling: Error ignored; Terminated with 0 satisfied, otherwise blocked; else wait."""
    rule = verdict(state, exit_code)
    if state == "Error":
        assert rule is Verdict.IGNORED
    elif state == "Terminated":
        assert rule is (Verdict.SATISFIED if not exit_code else Verdict.BLOCKED)
    elif state == "Hold":
        assert rule is Verdict.HELD
    else:
        assert rule is Verdict.PENDING


@given(st.integers(1, 10**6), st.integers(1, 255))
def test_oar3_blocked_message_names_the_job_and_its_exit_value(job_id: int, code: int) -> None:
    text = blocked_message(job_id, code << 8)
    assert f"dependency with the job {job_id}" in text and f"exit code {code})" in text


@given(st.sampled_from(["user,name", "name,user"]), st.sampled_from(["*,name", "name,*"]),
       st.sampled_from(["user,*", "*,user"]), st.text(min_size=1, max_size=5), st.text(min_size=1, max_size=5))
def test_oar3_timesharing_words_in_either_order(both: str, name_only: str, user_only: str, user: str,
                                                name: str) -> None:
    """OAR3's rule 15 accepts both orders; the meaning is the set of words."""
    assert timeshare_key({"timesharing": both}, user, name) == (f"user:{user}", f"name:{name}")
    assert timeshare_key({"timesharing": name_only}, user, name) == ("*", f"name:{name}")
    assert timeshare_key({"timesharing": user_only}, user, name) == (f"user:{user}", "*")
