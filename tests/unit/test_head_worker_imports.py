"""What each process of the head worker imports: the main process knows the tasks, its pool runs them.

The sum of the resident sets of the head worker's processes is bounded
(issue 22: under 300 MB with a million finished jobs): what the main process
imports is counted again in each pool child forked from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from oar_celery.deferred import MODULES, deferred

#: What the head worker's main process, Celery's worker command alone, loads before it forks its pool.
MAIN_PROCESS = """
import json, sys
from oar_celery.celery_main import main
from oar_celery.celery_app import HEAD_TASK_MODULES, app
app.loader.import_default_modules()
for module in HEAD_TASK_MODULES:
    __import__(module)
print(json.dumps({"modules": sorted(sys.modules), "tasks": sorted(app.tasks)}))
"""

#: A pool process: what :func:`oar_celery.deferred.load` imports once it is forked.
POOL_PROCESS = MAIN_PROCESS.replace("print(", "from oar_celery.deferred import load\nload()\nprint(")


def fresh_python(code: str) -> dict[str, list[str]]:
    env = {**os.environ, "OAR_PROCESS_KIND": "head"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def loaded(modules: list[str], *names: str) -> list[str]:
    return [m for m in modules if any(m == name or m.startswith(name + ".") for name in names)]


def test_the_main_process_registers_every_head_task_without_the_head_or_the_database_layer():
    main = fresh_python(MAIN_PROCESS)
    assert {"oar.almighty.cycle", "oar.almighty.submit_many", "oar.head.job_ended", "oar.control.delete",
            "oar.control.property"} <= set(main["tasks"])
    assert loaded(main["modules"], "oar_celery.head", "oar_celery.db", "sqlalchemy", "psycopg2", "alembic") == []
    # Celery's command line without its REPL and plugin commands (prompt_toolkit, Flower's Tornado)
    assert loaded(main["modules"], "click_repl", "prompt_toolkit", "flower", "tornado") == []


def test_a_pool_process_loads_the_head_modules_before_its_first_task_but_not_alembic():
    pool = fresh_python(POOL_PROCESS)
    assert {"oar_celery.head.submit", "oar_celery.head.almighty", "oar_celery.head.scheduling",
            "oar_celery.head.properties", "sqlalchemy"} <= set(pool["modules"])
    assert loaded(pool["modules"], "alembic", "mako") == []  # oarproperty's request imports it


def test_a_deferred_body_runs_its_function_and_names_it():
    body = deferred("os.path", "join")
    assert "os.path" in MODULES
    assert (body.__name__, body.__module__) == ("join", "os.path")
    assert body("a", "b") == os.path.join("a", "b")


def test_a_pool_process_finds_every_head_task_s_function_once_forked():
    """A misnamed function fails a pool process's start (the worker logs it), never the first request."""
    code = MAIN_PROCESS.replace("print(", "from oar_celery.deferred import _BODIES, load\nload()\n"
                                "assert _BODIES and all(target for _, _, target in _BODIES)\nprint(")
    fresh_python(code)


def test_a_misnamed_deferred_function_fails_the_load():
    code = ("from oar_celery.deferred import deferred, load\ndeferred('os.path', 'no_such_function')\n"
            "try:\n    load()\nexcept AttributeError:\n    print('{\"failed\": []}')\n")
    assert fresh_python(code) == {"failed": []}
