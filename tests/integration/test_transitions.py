"""State changes against real PostgreSQL: conditional, logged, per-job values, resources freed."""

from __future__ import annotations

import pytest

from tests.integration.test_scheduling_db import database, db, rows, schedule, state, submit  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def launched(count: int) -> list[int]:
    job_ids = [submit(resources=["/resource_id=1,walltime=0:10:00"]) for _ in range(count)]
    schedule()
    rows("UPDATE jobs SET state = 'Running', exit_code = 7 WHERE job_id = ANY(:ids)", ids=job_ids)
    return job_ids


def move(job_ids: list[int], new_state: str, expected: tuple[str, ...], **options: object) -> list[int]:
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.transitions import set_state

    with session_scope() as session:
        return set_state(session, job_ids, new_state, expected=expected, **options)


def current_resources(job_id: int) -> int:
    return rows(
        "SELECT count(*) FROM assigned_resources a JOIN jobs j ON j.assigned_moldable_job = a.moldable_job_id"
        " WHERE j.job_id = :id AND a.assigned_resource_index = 'CURRENT'", id=job_id,
    )[0][0]


def test_only_the_jobs_in_an_expected_state_move_and_each_move_is_logged(db: str) -> None:  # noqa: F811
    held, waiting = submit(), submit()
    rows("UPDATE jobs SET state = 'Hold' WHERE job_id = :id", id=held)
    assert move([held, waiting, held], "Waiting", ("Hold",), at=100.0) == [held]
    assert (state(held), state(waiting)) == ("Waiting", "Waiting")
    log = rows("SELECT job_state, date_start, date_stop FROM job_state_logs WHERE job_id = :id"
               " ORDER BY job_state_log_id", id=held)
    assert [entry[0] for entry in log] == ["Waiting", "Waiting"]
    assert log[0][2] == 100.0 and log[1][1:] == (100.0, 0.0)  # the old entry closed, the new one open
    assert len(rows("SELECT 1 FROM job_state_logs WHERE job_id = :id", id=waiting)) == 1


def test_ending_jobs_sets_each_its_message_keeps_an_unknown_exit_code_and_frees_resources(db: str) -> None:  # noqa: F811
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.transitions import finish_each

    first, second = launched(2)
    assert current_resources(first) == current_resources(second) == 1
    with session_scope() as session:
        ends = {first: ("exited with 3", 3), second: ("node lost", None)}
        assert sorted(finish_each(session, ends, "Error", expected=("Running",))) == [first, second]
    found = dict((job_id, (message, code)) for job_id, message, code in rows(
        "SELECT job_id, message, exit_code FROM jobs WHERE job_id = ANY(:ids)", ids=[first, second]))
    assert found == {first: ("exited with 3", 3), second: ("node lost", 7)}
    assert current_resources(first) == current_resources(second) == 0


def test_a_column_given_as_an_expression_is_computed_by_the_database(db: str) -> None:  # noqa: F811
    from oar_celery.db.models import Job

    (job_id,) = launched(1)
    rows("UPDATE jobs SET state = 'Resuming', suspended_time = 2 WHERE job_id = :id", id=job_id)
    assert move([job_id], "Running", ("Resuming",), suspended_time=Job.suspended_time + 5) == [job_id]
    assert rows("SELECT state, suspended_time FROM jobs WHERE job_id = :id", id=job_id) == [("Running", 7.0)]


def test_a_column_no_state_change_may_set_is_refused(db: str) -> None:  # noqa: F811
    job_id = submit()
    with pytest.raises(ValueError, match="not_a_column"):
        move([job_id], "Hold", ("Waiting",), not_a_column=1)
    assert state(job_id) == "Waiting"
