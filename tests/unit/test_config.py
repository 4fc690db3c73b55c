"""Settings from the environment: a value of the wrong kind is named in a one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from oar_celery.config import load_settings


def environment(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"OAR_STATE_DIR": str(tmp_path), "OAR_CONFIG_FILE": str(tmp_path / "absent.conf"), **values}


def test_numbers_are_read_from_the_environment(tmp_path: Path) -> None:
    config = load_settings(environment(tmp_path, OAR_DB_RANDOM_PAGE_COST="2.5", OAR_HEAD_CONCURRENCY="3"))
    assert (config.db_random_page_cost, config.head_concurrency) == (2.5, 3)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("OAR_DB_RANDOM_PAGE_COST", "fast", "OAR_DB_RANDOM_PAGE_COST must be a float, not 'fast'"),
    ("OAR_HEAD_CONCURRENCY", "2.5", "OAR_HEAD_CONCURRENCY must be an int, not '2.5'"),
])
def test_a_value_of_the_wrong_kind_names_its_setting(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        load_settings(environment(tmp_path, **{name: value}))
    assert str(error.value) == message


def test_the_admin_command_says_which_setting_is_wrong_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OAR_")}
    env.update(environment(tmp_path, OAR_SCHEDULER_MIN_TIME="soon"))
    done = subprocess.run([sys.executable, "-m", "oar_celery.cli.admin", "config"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "oar-celery: error: OAR_SCHEDULER_MIN_TIME must be a float, not 'soon'"
    ]


def test_an_unknown_setting_is_named_with_the_closest_setting(tmp_path: Path) -> None:
    from oar_celery.config import unknown_settings

    (tmp_path / "oar.conf").write_text('OAR_SARKO_PERIODE="3"\nOAR_ALMIGHTY_TICK="2"\n')
    env = environment(tmp_path, OAR_CONFIG_FILE=str(tmp_path / "oar.conf"), OAR_SCHEDULER_MIN_TIM="3",
                      OAR_BROKER_URLL_FILE="/x", OAR_NOTHING_LIKE_IT="1", OAR_JOB_ID="7", OAR_TEST_PG="x")
    assert unknown_settings(env) == [
        "OAR_BROKER_URLL_FILE (did you mean OAR_BROKER_URL_FILE?)",
        "OAR_NOTHING_LIKE_IT",
        "OAR_SARKO_PERIODE (did you mean OAR_SARKO_PERIOD?)",
        "OAR_SCHEDULER_MIN_TIM (did you mean OAR_SCHEDULER_MIN_TIME?)",
    ]


def test_every_command_warns_of_an_unknown_setting_in_one_line_and_goes_on(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OAR_")}
    env.update(environment(tmp_path, OAR_SCHEDULER_MIN_TIM="3"))
    done = subprocess.run([sys.executable, "-m", "oar_celery.cli.admin", "config"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "oar-celery: warning: unknown setting(s) ignored: OAR_SCHEDULER_MIN_TIM (did you mean OAR_SCHEDULER_MIN_TIME?)"
    ]
    assert "OAR_SCHEDULER_MIN_TIME=1.0" in done.stdout.splitlines()


def test_known_settings_and_a_jobs_environment_raise_no_warning(tmp_path: Path) -> None:
    from oar_celery.config import setting_names, unknown_settings

    env = environment(tmp_path, **{name: "1" for name in setting_names()},
                      **{name + "_FILE": "/x" for name in setting_names()},
                      OAR_NODEFILE="/x", OAR_WORKDIR="/x", OAR_ARRAY_INDEX="1", OAR_PROCESS_KIND="head")
    assert unknown_settings(env) == []


def test_a_secret_file_named_in_the_environment_wins_over_the_value_of_the_file(tmp_path: Path) -> None:
    """A process given its own broker credentials (``OAR_BROKER_URL_FILE``) uses them, not oar.conf's URL."""
    (tmp_path / "oar.conf").write_text('OAR_BROKER_URL="redis://127.0.0.1:7000/0"\nOAR_LOG_LEVEL="WARNING"\n')
    (tmp_path / "head.url").write_text("redis://oar-head:secret@127.0.0.1:7000/0\n")
    env = environment(tmp_path, OAR_CONFIG_FILE=str(tmp_path / "oar.conf"),
                      OAR_BROKER_URL_FILE=str(tmp_path / "head.url"))
    config = load_settings(env)
    assert (config.broker_url, config.log_level) == ("redis://oar-head:secret@127.0.0.1:7000/0", "WARNING")
    assert load_settings({**env, "OAR_BROKER_URL_FILE": ""}).broker_url == "redis://127.0.0.1:7000/0"
