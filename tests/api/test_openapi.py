"""Schemathesis over the API's OpenAPI document, against a real cluster: every answer as documented, no 500.

The requests carry the token of an unprivileged throwaway user, so the jobs the
run submits run as that user, never as root.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import start_api_cluster
from tests.integration.users import throwaway_user

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = Path(__file__).parent / "schemathesis.toml"


def test_schemathesis_finds_no_failure_in_the_openapi_document(
    cluster_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with throwaway_user() as user:
        api = start_api_cluster(cluster_factory, tmp_path_factory.mktemp("api"))
        report = tmp_path_factory.mktemp("schemathesis")
        result = subprocess.run(
            [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{api.url}/openapi.json", "--checks", "all",
             "--exclude-checks", "use_after_free",  # see schemathesis.toml
             "--header", f"Authorization: Bearer {api.token(user)}", "--max-examples", "30", "--workers", "2",
             "--request-timeout", "60", "--seed", "20", "--generation-database", "none",
             "--report", "junit", "--report-dir", str(report), "--no-color"],
            capture_output=True, text=True, timeout=840, env=api.cluster.env, cwd=report,
        )
        (report / "schemathesis.out").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, f"see {report / 'schemathesis.out'}\n" + result.stdout[-6000:]
        assert "No issues found" in result.stdout
