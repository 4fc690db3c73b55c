"""The REST API over HTTP against a real cluster that proves its users: OAR3's routes, fields and status codes.

The cluster runs with ``--auth``: every write of the API reaches the head as a
request signed for the authenticated user, as the commands' are.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import Api, http_as
from tests.integration.users import throwaway_user

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def eve() -> Iterator[str]:
    with throwaway_user() as name:
        yield name


def one_line_error(response: Any, status: int) -> str:
    """The body of an error: exactly ``{"detail": "<one line>"}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["detail"] and "\n" not in body["detail"] and body["detail"], body
    return str(body["detail"])


def submit(api: Api, user: str = "root", **fields: Any) -> dict[str, Any]:
    body = {"command": "true", "resource": ["/nodes=1/core=1,walltime=0:05:00"],
            "directory": str(api.cluster.workdir), **fields}
    response = api.post("/jobs", json=body, headers=api.as_(user))
    assert response.status_code == 200, response.text
    return dict(response.json())


def state_of(api: Api, job_id: int) -> str:
    return str(api.cluster.state(job_id))


def test_front_routes_give_versions_time_and_health(api: Api) -> None:
    version = api.get("/version").json()
    assert {"oar_version", "oar_server_version", "api_version", "apilib_version", "api_timestamp"} <= set(version)
    assert api.get("/timezone").json()["api_timezone"] == "UTC"
    index = api.get("/").json()
    assert {link["title"] for link in index["links"]} >= {"jobs", "resources", "gantt", "nodes"}
    assert api.get("/check").json() | {"api_timestamp": 0} == {
        "database": "ok", "broker": "ok", "api_timestamp": 0, "api_timezone": "UTC"}
    assert api.get("/openapi.json").json()["paths"]["/jobs/{job_id}"]["get"]


def test_a_submitted_job_runs_and_is_shown_with_oar3_fields(api: Api) -> None:
    answer = submit(api, command="echo from-api", name="apijob")
    job_id = answer["id"]
    assert answer["cmd_output"] == f"OAR_JOB_ID={job_id}\n" and answer["links"][0]["href"] == f"/jobs/{job_id}"
    api.cluster.wait_for(job_id)
    job = api.get(f"/jobs/{job_id}").json()  # anonymous: no private field
    assert {k: job[k] for k in ("id", "state", "user", "name", "queue_name", "exit_code", "exit_status_code")} == {
        "id": job_id, "state": "Terminated", "user": "root", "name": "apijob", "queue_name": "default",
        "exit_code": 0, "exit_status_code": 0}
    assert "command" not in job and isinstance(job["submission_time"], int) and job["start_time"] > 0
    mine = api.get(f"/jobs/{job_id}", params={"details": "true"}, headers=api.as_("root")).json()
    assert mine["command"] == "echo from-api" and mine["launching_directory"] == str(api.cluster.workdir)
    assert len(mine["resources"]) == 1 and mine["nodes"][0]["network_address"] in api.cluster.hosts
    assert mine["walltime"] == 300 and mine["types"] == {} and mine["actual_resources"] == "/network_address=1/core=1"
    assert any(event["type"] for event in mine["events"]) or mine["events"] == []
    resources = api.get(f"/jobs/{job_id}/resources").json()
    assert resources["total"] == 1 and resources["items"][0]["status"] == "assigned"
    assert resources["items"][0]["id"] == mine["resources"][0]["id"]
    nodes = api.get(f"/jobs/{job_id}/nodes").json()
    assert [n["network_address"] for n in nodes["items"]] == [mine["nodes"][0]["network_address"]]
    assert api.get(f"/jobs/{job_id}/events").json()["total"] == len(mine["events"])
    # the default listing is the current jobs; a state, ids, a user or the array pick finished ones
    assert job_id not in [j["id"] for j in api.get("/jobs").json()["items"]]
    for params in ({"state": "Terminated"}, {"states": "Terminated"}, {"ids": f"{job_id}"},
                   {"job_ids": job_id}, {"array": job_id}, {"state": "Terminated,Error", "user": "root"}):
        listed = api.get("/jobs", params=params).json()["items"]
        assert job_id in [j["id"] for j in listed], params
        assert set(listed[0]) <= {"id", "name", "queue_name", "user", "submission_time", "state", "exit_code",
                                  "exit_status_code", "links"}
    assert api.get("/jobs", params={"state": "Terminated", "user": "nobody"}).json()["total"] == 0
    detailed = api.get("/jobs", params={"ids": str(job_id), "details": "details"}).json()["items"][0]
    assert detailed["type"] == "PASSIVE" and detailed["resources"] and "command" not in detailed


def test_listings_are_paged_with_oar_links(api: Api) -> None:
    ids = [submit(api, hold=True)["id"] for _ in range(3)]
    first = api.get("/jobs", params={"state": "Hold", "limit": 2}).json()
    assert first["total"] == 3 and [j["id"] for j in first["items"]] == ids[:2] and first["offset"] == 0
    links = {link["rel"]: link["href"] for link in first["links"]}
    assert set(links) == {"self", "next"} and "state=Hold" in links["next"] and "offset=2" in links["next"]
    second = api.get(links["next"]).json()
    assert [j["id"] for j in second["items"]] == ids[2:]
    assert {link["rel"] for link in second["links"]} == {"self", "previous"}
    assert "past the end" in one_line_error(api.get("/jobs", params={"state": "Hold", "offset": 10}), 404)
    for job_id in ids:
        assert api.delete(f"/jobs/{job_id}", headers=api.as_("root")).json()["exit_status"] == 0
    api.cluster.wait_for(ids, ("Error",))


def test_hold_resume_signal_checkpoint_and_delete_act_as_the_commands(api: Api) -> None:
    root = api.as_("root")
    held = submit(api, hold=True, command="trap '' USR2; sleep 60")["id"]  # the signals must not end it
    refused = api.post(f"/jobs/{held}/checkpoints/new", headers=root).json()
    assert refused["exit_status"] == 1 and "not running" in refused["cmd_output"]
    assert api.post(f"/jobs/{held}/signal/12", headers=root).json()["exit_status"] == 1
    resumed = api.post(f"/jobs/{held}/resumptions/new", headers=root).json()
    assert resumed == {**resumed, "id": held, "exit_status": 0, "status": "Resume request registered"}
    api.cluster.wait_for(held, ("Running",))
    signalled = api.post(f"/jobs/{held}/signals/12", headers=root).json()
    assert signalled["exit_status"] == 0 and "Signal 12" in signalled["cmd_output"]
    assert api.post(f"/jobs/{held}/checkpoints/new", headers=root).json()["exit_status"] == 0
    assert api.post(f"/jobs/{held}/rholds/new", headers=root).json()["exit_status"] == 0
    api.cluster.wait_for(held, ("Suspended",))
    assert api.post(f"/jobs/{held}", json={"method": "resume"}, headers=root).json()["exit_status"] == 0
    api.cluster.wait_for(held, ("Running",))
    deleted = api.post(f"/jobs/{held}/deletions/new", headers=root).json()
    assert deleted["exit_status"] == 0 and "REGISTERED" in deleted["cmd_output"]
    api.cluster.wait_for(held, ("Error", "Terminated"))
    again = api.delete(f"/jobs/{held}", headers=root).json()
    assert again["exit_status"] == 1 and "already finished" in again["cmd_output"]


def test_an_array_is_submitted_and_deleted_whole(api: Api) -> None:
    answer = submit(api, hold=True, param_file="first\nsecond\n\nthird")
    assert len(answer["ids"]) == 3 and answer["id"] == min(answer["ids"])
    listed = api.get("/jobs", params={"array": answer["id"]}, headers=api.as_("root")).json()["items"]
    assert [j["id"] for j in listed] == answer["ids"]
    commands = [api.get(f"/jobs/{i}", headers=api.as_("root")).json()["command"] for i in answer["ids"]]
    assert commands == ["true first", "true second", "true third"]
    gone = api.delete(f"/jobs/{answer['id']}", params={"array": "true"}, headers=api.as_("root")).json()
    assert gone["exit_status"] == 0 and gone["cmd_output"].count("REGISTERED") == 3
    api.cluster.wait_for(answer["ids"], ("Error",))
    empty = api.delete(f"/jobs/{answer['id']}", params={"array": "true"}, headers=api.as_("root")).json()
    assert empty["exit_status"] == 4


def test_bad_input_is_answered_with_one_line_and_oar3_status_codes(api: Api) -> None:
    root = api.as_("root")
    assert "limit" in one_line_error(api.get("/jobs", params={"limit": "many"}), 422)
    assert "state" in one_line_error(api.get("/jobs", params={"state": "Runing"}), 422)
    assert "ids" in one_line_error(api.get("/jobs", params={"ids": "1:x"}), 422)
    one_line_error(api.get("/jobs/first"), 404)
    assert one_line_error(api.get("/jobs/2147483000"), 404) == "Job not found"
    assert one_line_error(api.get("/resources/2147483000"), 404) == "Resource not found"
    assert one_line_error(api.get("/jobs/2147483000/resources"), 404) == "Job not found"
    assert "command" in one_line_error(api.post("/jobs", json={"resource": ["/nodes=1"]}, headers=root), 422)
    assert "unknown queue 'nope'" in one_line_error(
        api.post("/jobs", json={"command": "true", "queue": "nope", "directory": "/tmp"}, headers=root), 400)
    one_line_error(api.post("/jobs", json={"command": "true", "resource": "/nodes=x", "directory": "/tmp"},
                            headers=root), 400)
    assert "use-job-key" in one_line_error(
        api.post("/jobs", json={"command": "true", "use-job-key": True}, headers=root), 422)
    one_line_error(api.post("/jobs", content=b"{not json", headers={**root, "content-type": "application/json"}), 422)
    one_line_error(api.post("/jobs/1/freeze/new", headers=root), 422)
    one_line_error(api.post("/jobs/1/signal/99", headers=root), 422)
    one_line_error(api.post("/resources/1/state", json={"state": "Asleep"}, headers=root), 422)
    assert "JSON" in one_line_error(
        api.post("/resources", params={"hostname": "n", "properties": "{"}, headers=root), 400)
    one_line_error(api.get("/gantt", params={"since": 10, "until": 5}), 400)
    assert api.cluster.scalar("SELECT count(*) FROM jobs WHERE queue_name = 'nope'") == 0


def test_writes_need_a_valid_unrevoked_token_or_a_trusted_front_server(api: Api, tmp_path: Any) -> None:
    assert one_line_error(api.post("/jobs", json={"command": "true"}), 403) == "Not authenticated"
    assert one_line_error(api.delete("/jobs/1"), 403) == "Not authenticated"
    assert one_line_error(api.get("/whoami"), 403) == "Not authenticated"
    bad = {"Authorization": "Bearer not-a-token"}
    assert one_line_error(api.get("/check_token", headers=bad), 401) == "Could not validate credentials"
    assert one_line_error(api.get("/jobs", headers=bad), 401) == "Could not validate credentials"
    assert api.get("/whoami", headers=api.as_("alice")).json()["authenticated_user"] == "alice"
    fresh = api.get("/get_new_token", headers=api.as_("alice")).json()["OAR_API_TOKEN"]
    assert api.get("/check_token", headers={"Authorization": f"Bearer {fresh}"}).json()["user"] == "alice"
    # the front web server (a trusted address) names the user
    assert api.get("/whoami", headers={"X-Remote-Ident": "carol"}).json()["authenticated_user"] == "carol"
    assert one_line_error(api.get("/whoami", headers={"X-Remote-Ident": "unknown"}), 403) == "Not authenticated"


def test_an_admin_revokes_tokens_with_oar3s_file(api: Api) -> None:
    old, other = api.token("mallory"), api.token("trent")
    assert api.get("/whoami", headers={"Authorization": f"Bearer {old}"}).status_code == 200
    time.sleep(1.1)  # token dates are whole seconds
    api.revocations.write_text(json.dumps({"revoked": {"mallory": _utc()}}))
    assert "revoked" in one_line_error(api.get("/whoami", headers={"Authorization": f"Bearer {old}"}), 401)
    assert api.get("/whoami", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    assert api.get("/whoami", headers=api.as_("mallory")).status_code == 200  # issued after the date
    time.sleep(1.1)
    api.revocations.write_text(json.dumps({"global": _utc()}))
    assert one_line_error(api.post("/jobs/1/holds/new", headers={"Authorization": f"Bearer {other}"}), 401)
    api.revocations.write_text("{}")


def test_another_user_cannot_act_on_a_job_nor_read_its_private_fields(api: Api, eve: str) -> None:
    job_id = api.cluster.oarsub("--hold", "-l", "/core=1", "sleep 30")
    key_file = api.cluster.state_dir / "api.key"
    forged = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjoicm9vdCIsImRhdGUiOiIyMDMwLTAxLTAxIDAwOjAwOjAwIn0.c2lnbmF0dXJl"
    eve_token = {"Authorization": f"Bearer {api.token(eve)}"}
    answers = http_as(api, eve, [
        {"method": "GET", "path": f"/jobs/{job_id}", "headers": eve_token},
        {"method": "DELETE", "path": f"/jobs/{job_id}", "headers": eve_token},
        {"method": "POST", "path": f"/jobs/{job_id}/resumptions/new", "headers": eve_token},
        {"method": "POST", "path": "/resources/1/state", "headers": eve_token, "json": {"state": "Absent"}},
        {"method": "DELETE", "path": f"/jobs/{job_id}", "headers": {"Authorization": f"Bearer {forged}"}},
        {"read": str(key_file)},
    ])
    shown, deleted, resumed, node, forged_answer, key = answers
    assert shown["status"] == 200 and shown["body"]["user"] == "root"
    assert not {"command", "launching_directory", "initial_request", "stdout_file"} & set(shown["body"])
    assert deleted["status"] == 200 and deleted["body"]["exit_status"] == 1
    assert f"belongs to root, not to {eve}" in deleted["body"]["cmd_output"]
    assert resumed["body"]["exit_status"] == 1
    assert node["body"]["exit_status"] == 1 and "only root or" in node["body"]["status"]
    assert forged_answer["status"] == 401
    assert key == {"error": "PermissionError"}
    # from an address the API does not trust, the front server's header is not believed
    spoofed = http_as(api, eve, [
        {"method": "DELETE", "path": f"/jobs/{job_id}", "headers": {"X-Remote-Ident": "root"}},
        {"method": "GET", "path": "/whoami", "headers": {"X-Remote-Ident": "root"}},
    ], source="127.0.0.2")
    assert [a["status"] for a in spoofed] == [403, 403]
    assert api.cluster.state(job_id) == "Hold"
    assert api.cluster.scalar("SELECT next_state FROM resources WHERE resource_id = 1") == "UnChanged"
    owner = api.get(f"/jobs/{job_id}", headers=api.as_("root")).json()
    assert owner["command"] == "sleep 30"
    assert api.delete(f"/jobs/{job_id}", headers=api.as_("root")).json()["exit_status"] == 0


def test_an_admin_changes_adds_and_removes_resources_through_the_head(api: Api) -> None:
    oar = api.as_("oar")
    listing = api.get("/resources").json()
    assert listing["total"] == 4 and set(listing["items"][0]) == {"id", "state", "available_upto",
                                                                   "network_address", "links"}
    assert len(api.get("/resources", params={"network_address": "node1"}).json()["items"]) == 2
    node = api.get("/resources/nodes/node2").json()["items"]
    assert len(node) == 2 and "suspended_jobs" in node[0] and node[0]["core"] is not None
    assert isinstance(api.get("/resources/busy").json()["busy"], int)
    changed = api.post("/resources/4/state", json={"state": "Absent"}, headers=oar).json()
    assert changed["exit_status"] == 0 and changed["status"] == "Change state request registered"
    api.cluster.wait_until(lambda: api.get("/resources/4").json()["state"] == "Absent", 30, "resource 4 Absent")
    api.post("/resources/4/state", json={"state": "Alive"}, headers=oar)
    api.cluster.wait_until(lambda: api.get("/resources/4").json()["state"] == "Alive", 30, "resource 4 Alive")
    created = api.post("/resources", params={"hostname": "node9", "properties": json.dumps({"mem": 64})},
                       headers=oar).json()
    assert created["status"] == "ok" and created["uri"] == f"/resources/{created['id']}"
    shown = api.get(f"/resources/{created['id']}").json()
    assert shown["network_address"] == "node9" and shown["mem"] == 64
    alive = api.delete(f"/resources/{created['id']}", headers=oar).json()
    assert alive["exit_status"] == 1 and "not Dead" in alive["status"]
    api.post(f"/resources/{created['id']}/state", json={"state": "Dead"}, headers=oar)
    api.cluster.wait_until(lambda: api.get(f"/resources/{created['id']}").json()["state"] == "Dead", 30, "Dead")
    removed = api.delete(f"/resources/{created['id']}", headers=oar).json()
    assert removed == {**removed, "status": "Deleted", "exit_status": 0}
    assert api.get(f"/resources/{created['id']}").status_code == 404
    held_by = api.cluster.scalar("SELECT min(resource_id) FROM assigned_resources")
    jobs = api.get(f"/resources/{held_by}/jobs").json()
    assert jobs["total"] >= 1 and {"id", "state", "user"} <= set(jobs["items"][0])


def _utc(offset: float = 0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def test_a_running_job_gets_more_walltime_as_oarwalltime_gives_it(api: Api) -> None:
    """``POST /jobs/<id>/walltime`` is ``oarwalltime JOBID +DURATION``; ``GET`` its status; others are refused."""
    root = api.as_("root")
    job_id = submit(api, command="sleep 60", resource=["/core=1,walltime=0:00:30"])["id"]
    api.cluster.wait_for(job_id, ("Running",))
    asked = api.post(f"/jobs/{job_id}/walltime", json={"walltime": "+0:10"}, headers=root).json()
    assert asked["exit_status"] == 0, asked
    api.cluster.wait_until(lambda: api.cluster.scalar(
        "SELECT m.moldable_walltime FROM jobs j JOIN moldable_job_descriptions m"
        " ON m.moldable_id = j.assigned_moldable_job WHERE j.job_id = :id", id=job_id) == 30 + 600,
        30, "walltime granted")
    status = api.get(f"/jobs/{job_id}/walltime", headers=root).json()
    assert status["exit_status"] == 0 and "0:10:30" in status["cmd_output"]
    bad = api.post(f"/jobs/{job_id}/walltime", json={"walltime": "ten minutes"}, headers=root)
    assert bad.status_code == 422
    api.delete(f"/jobs/{job_id}", headers=root)
    api.cluster.wait_for(job_id)
