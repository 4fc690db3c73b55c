"""What a cycle task's result says of the jobs it ended: what Flower shows an admin."""

from __future__ import annotations

from oar_celery.almighty import job_outcomes
from oar_celery.head.reports import Applied, Ended


def test_a_cycles_result_names_each_ended_job_with_its_final_state_host_and_reason():
    applied = Applied(ended=[Ended(12, "node3", 3, "exited", "the job exited with status 3"),
                             Ended(13, "node1", 0, "exited", "the job exited with status 0"),
                             Ended(14, "node2", None, "walltime", "the job was killed at its walltime")])
    assert job_outcomes([("reports", applied), ("scheduler", object())]) == {"ended": {
        "12": "Terminated on node3: the job exited with status 3",  # OAR: a job that ran to its end
        "13": "Terminated on node1: the job exited with status 0",
        "14": "Error on node2: the job was killed at its walltime",
    }}


def test_a_cycle_that_ended_no_job_has_an_empty_result():
    assert job_outcomes([("reports", Applied()), ("runner", None)]) == {}
    assert job_outcomes([]) == {}
