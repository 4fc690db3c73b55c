"""OAR3's rules that are pure functions: wait statuses, admission rules, --sql clauses, oarsub's options."""

from __future__ import annotations

import pytest

from oar_celery.cli import oarsub
from oar_celery.client.sql_filter import select_rows
from oar_celery.head.lib import rules
from oar_celery.scheduler.errors import RequestError
from oar_celery.wait_status import exit_value, status_text, wait_status


def test_oar3_exit_code_is_the_wait_status() -> None:
    """OAR keeps waitpid's status: exit 3 is 768 and oarstat shows '768 (3,0,0)'; a kill keeps the signal."""
    assert wait_status(3) == 768 and exit_value(768) == 3 and status_text(768) == "768 (3,0,0)"
    assert wait_status(0) == 0 and wait_status(None) is None
    assert wait_status(143, "killed") == 15 and status_text(15) == "15 (0,15,0)"
    assert wait_status(139, "exited") == 139 << 8  # the job's shell itself exited 139


def test_oar3_reservation_in_the_past_is_kept_until_its_walltime_is_over() -> None:
    """OAR3 meta_sched: only a reservation whose start + walltime is past is refused ('too old')."""
    assert rules.reservation_start(1000.0, [600], at=1500.0) == 1000.0
    with pytest.raises(RequestError, match="entirely in the past"):
        rules.reservation_start(1000.0, [600], at=1600.0)


def test_sql_clause_is_parsed_not_pasted() -> None:
    """OAR3 pastes --sql into its query; here it is parsed like -p and evaluated on the rows."""
    rows = [{"project": "p1", "job_user": "a"}, {"project": "p2", "job_user": "b"}]
    kinds = {"project": "str", "job_user": "str"}
    assert select_rows(rows, "project = 'p1'", kinds, lambda r: r) == rows[:1]
    assert select_rows(rows, "job_user LIKE 'b%' OR project = 'p1'", kinds, lambda r: r) == rows
    for bad in ("project = 'p1'; DROP TABLE jobs", "nosuch = 1", "   "):
        with pytest.raises(RequestError):
            select_rows(rows, bad, kinds, lambda r: r)


def test_oar3_oarsub_after_hold_and_bare_h(capsys: pytest.CaptureFixture[str]) -> None:
    """OAR3's oarsub: -a is --after (--anterior kept), --hold has no -h, and -h is help."""
    args = oarsub.build_parser().parse_args(["--after", "4", "-a", "5", "--anterior", "6", "--hold", "true"])
    assert args.dependencies == [4, 5, 6] and args.hold
    assert oarsub.main(["-h", "true"]) == 0
    assert capsys.readouterr().out.startswith("usage: oarsub")


def test_oar3_command_less_reservation_is_accepted_by_oarsub() -> None:
    """OAR3: 'Command or interactive flag or advance reservation time ... must be provided'."""
    request = oarsub.build_request(oarsub.build_parser().parse_args(["-r", "2030-01-01 10:00:00"]))
    assert request["command"] == "" and request["reservation"] == "2030-01-01 10:00:00"
    with pytest.raises(Exception, match="command is required"):
        oarsub.build_request(oarsub.build_parser().parse_args([]))
