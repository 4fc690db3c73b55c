"""Admission rules on the head: OAR3's default rules, the admin's modules, declarative rows, on and off.

Each check goes through :func:`admission.check` on a real (SQLite) database of
the head's schema, as a submission does; a refused request stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from oar_celery.config import Settings
from oar_celery.db.models import AdmissionRule, Job
from oar_celery.head.lib import admission, rulebook, rules
from oar_celery.scheduler.errors import RequestError


@pytest.fixture
def head(tmp_path: Path) -> Iterator[Any]:
    from oar_celery.db.schema import init_database
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.resources import add_resources

    url = f"sqlite:///{tmp_path / 'oar.db'}"
    init_database(url)
    with session_scope(url) as session:
        add_resources(session, ["node1", "node2"], cpus=1, cores=2)

    class Head:
        config = Settings(admission_rules="tests.site_rules", queue_max_walltime="default=4:00:00",
                          tokens="licence=2", cosystem_hostname="node2")

        def submit(self, **request: Any) -> Any:
            request = {"user": "alice", "command": "true", "directory": "/tmp", **request}
            with session_scope(url) as session:
                return admission.check(session, request, self.config)

        def refused(self, **request: Any) -> str:
            with pytest.raises(RequestError) as caught:
                self.submit(**request)
            return str(caught.value)

        def session(self) -> Any:
            return session_scope(url)

    yield Head()
    rules.loaded_rules.cache_clear()


def test_default_queue_and_walltime(head: Any) -> None:
    checked = head.submit(resources=["/core=1"])
    assert checked.queue == "default"
    assert [m.walltime for m in checked.moldables] == [7200]


def test_a_besteffort_job_goes_to_the_besteffort_queue_and_back(head: Any) -> None:
    assert head.submit(types=["besteffort"]).queue == "besteffort"
    assert "besteffort" in head.submit(queue="besteffort").types


def test_a_besteffort_reservation_is_refused(head: Any) -> None:
    message = head.refused(types=["besteffort"], reservation="2099-01-01 10:00:00")
    assert message == "a job cannot both be of type besteffort and be a reservation"


def test_the_admin_queue_is_for_the_admin_only(head: Any) -> None:
    assert head.refused(queue="admin") == "only member of the group admin can submit jobs in the admin queue"
    assert head.submit(queue="admin", user="oar").queue == "admin"


def test_the_maximum_walltime_of_a_queue(head: Any) -> None:
    message = head.refused(resources=["/core=1,walltime=5:00:00"])
    assert message == "walltime 5:00:00 is over the maximum 4:00:00 of queue 'default'"
    assert head.submit(resources=["/core=1,walltime=5:00:00"], queue="besteffort").queue == "besteffort"


def test_an_unknown_type_gets_one_line(head: Any) -> None:
    message = head.refused(types=["bogus"])
    assert message.startswith("unknown job type 'bogus' (known: besteffort, idempotent,")
    assert "\n" not in message


def test_deploy_takes_whole_nodes(head: Any) -> None:
    head.config = Settings(deploy_hostname="node1")
    assert head.refused(types=["deploy"], resources=["/core=1"]).startswith("core resource is not allowed")
    assert head.submit(types=["deploy"], resources=["/nodes=1"]).types == ["deploy"]


def test_a_site_rule_adds_a_type(head: Any) -> None:
    assert "idempotent" in head.submit(name="retry-3").types
    assert "idempotent" not in head.submit(name="once").types


def test_a_site_rule_refuses_and_nothing_is_stored(head: Any) -> None:
    assert head.refused(project="closed") == "project 'closed' takes no more jobs"
    with head.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_rule_that_crashes_refuses_with_its_first_line(head: Any) -> None:
    message = head.refused(project="crash")
    assert message == "admission rule tests.site_rules.rule_crashes: a bug in the rule"


def test_a_disabled_rule_is_not_applied_and_can_be_enabled_again(head: Any) -> None:
    with head.session() as session:
        rulebook.set_enabled(session, head.config, "oar.default_walltime", False)
    assert head.refused() == "a walltime is required on this cluster (-l ...,walltime=H:MM:SS)"
    with head.session() as session:
        rulebook.set_enabled(session, head.config, "oar.default_walltime", True)
    assert head.submit().moldables[0].walltime == 7200


def test_rules_are_listed_in_order_with_their_state(head: Any) -> None:
    with head.session() as session:
        rulebook.set_enabled(session, head.config, "tests.site_rules.rule_crashes", False)
        listed = rulebook.describe(session, head.config)
    names = [r["name"] for r in listed]
    assert names[:8] == ["oar.default_queue", "oar.admin_queue", "oar.besteffort_formatting",
                         "oar.besteffort_reservation", "oar.deploy_whole_nodes", "oar.default_walltime",
                         "oar.max_walltime", "oar.check_types"]
    assert {r["name"]: r["enabled"] for r in listed}["tests.site_rules.rule_crashes"] is False


def test_an_unknown_rule_name_is_refused(head: Any) -> None:
    with head.session() as session, pytest.raises(RequestError, match="no admission rule named 'nope'"):
        rulebook.set_enabled(session, head.config, "nope", False)


def test_a_declarative_rule_from_the_table(head: Any) -> None:
    rule = '{"name": "physics", "when": {"project": "physics"}, "add_types": ["idempotent"], "max_walltime": "1:00:00"}'
    with head.session() as session:
        assert rulebook.add_declarative(session, rule) == "table.physics"
    assert "idempotent" in head.submit(project="physics", resources=["/core=1,walltime=0:30:00"]).types
    assert head.refused(project="physics", resources=["/core=1,walltime=2:00:00"]).startswith("walltime over")
    with head.session() as session:
        rulebook.set_enabled(session, head.config, "table.physics", False)
        assert session.scalar(select(AdmissionRule.enabled).where(AdmissionRule.rule.like("{%"))) == "NO"
    assert "idempotent" not in head.submit(project="physics", resources=["/core=1,walltime=2:00:00"]).types


def test_a_python_rule_in_the_table_is_never_executed(head: Any, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    with head.session() as session:
        session.add(AdmissionRule(rule=f"open({str(marker)!r}, 'w').write('x')", priority=1, enabled="YES"))
    head.submit()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "a declarative rule must be JSON"),
        ('{"when": {"color": "red"}, "refuse": "x"}', "'when' takes an object of"),
        ('{"name": "x"}', "a declarative rule needs an action"),
        ('{"exec": "import os"}', "unknown key 'exec'"),
    ],
)
def test_a_bad_declarative_rule_is_not_stored(head: Any, text: str, message: str) -> None:
    with head.session() as session, pytest.raises(RequestError, match=message):
        rulebook.add_declarative(session, text)


def test_inner_needs_a_container_of_ones_own(head: Any) -> None:

    assert head.refused(types=["inner=99"]) == "inner=99: job 99 does not exist"
    with head.session() as session:
        plain = admission.insert(session, _checked(head), at=0.0)[0]
        box = admission.insert(session, _checked(head, types=["container"]), at=0.0)[0]
    assert head.refused(types=[f"inner={plain}"]) == f"inner={plain}: job {plain} is not a container (-t container)"
    assert head.refused(types=[f"inner={box}"], user="mallory") == f"inner={box}: the container belongs to another user"
    assert head.submit(types=[f"inner={box}"]).types == [f"inner={box}"]


def test_inner_by_container_name(head: Any) -> None:
    assert head.refused(types=["inner=grp"]).startswith("inner=grp: no container named grp")
    with head.session() as session:
        admission.insert(session, _checked(head, types=["container=grp"]), at=0.0)
    assert head.submit(types=["inner=grp"]).types == ["inner=grp"]
    assert head.refused(types=["inner=grp"], user="mallory") == "inner=grp: the container belongs to another user"


def _checked(head: Any, **request: Any) -> Any:
    return head.submit(**request)


def test_tokens_must_be_configured_and_enough(head: Any) -> None:
    assert head.refused(types=["token:matlab=1"]) == "unknown token 'matlab' (configured: licence)"
    assert head.refused(types=["token:licence=3"]) == "token:licence=3 asks for more than the 2 the cluster has"
    assert head.submit(types=["token:licence=2"]).types == ["token:licence=2"]


def test_cosystem_needs_its_host(head: Any) -> None:
    assert head.submit(types=["cosystem"], resources=["/nodes=1"]).types == ["cosystem"]
    head.config = Settings()
    assert head.refused(types=["cosystem"], resources=["/nodes=1"]) == (
        "cosystem jobs are not available: OAR_COSYSTEM_HOSTNAME is not set"
    )


def test_a_broken_rule_module_refuses_every_job_with_one_line(head: Any) -> None:
    head.config = Settings(admission_rules="tests.no_such_rules_module")
    assert head.refused().startswith("OAR_ADMISSION_RULES: cannot import 'tests.no_such_rules_module'")


def test_what_a_rule_changes_is_what_is_stored(head: Any) -> None:
    rule = '{"name": "big", "when": {"user": "alice"}, "set_queue": "besteffort", "add_properties": "core > 1"}'
    with head.session() as session:
        rulebook.add_declarative(session, rule)
    with head.session() as session:
        job_id = admission.insert(session, head.submit(properties="core < 4"), at=0.0)[0]
    with head.session() as session:
        stored = session.get(Job, job_id)
        assert (stored.queue_name, stored.properties) == ("besteffort", "(core < 4) AND (core > 1)")


def test_inner_jobs_end_with_the_last_container_of_their_name(head: Any) -> None:
    from sqlalchemy import update

    from oar_celery.head.lib.inner import end_orphans

    with head.session() as session:
        boxes = [admission.insert(session, _checked(head, types=["container=grp"]), at=0.0)[0] for _ in range(2)]
    with head.session() as session:
        inner = admission.insert(session, _checked(head, types=["inner=grp"]), at=0.0)[0]
    for count, box in enumerate(boxes, start=1):
        with head.session() as session:
            session.execute(update(Job).where(Job.job_id == box).values(state="Terminated"))
            end_orphans(session)
        with head.session() as session:
            state, message = session.execute(select(Job.state, Job.message).where(Job.job_id == inner)).one()
        if count == 1:
            assert state == "Waiting"  # another container of that name still lives
        else:
            assert (state, message) == ("Error", "its container grp has ended")
