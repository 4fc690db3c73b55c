"""A job whose user the node does not know ends in Error saying so.

The cluster here has no authentication key, so the test can name a user
that exists nowhere: on a cluster with a key the head would put the proven
user in its place (tests/security/test_auth.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.security.test_identity import ROOT

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def open_cluster(cluster_factory):  # type: ignore[no-untyped-def]
    return cluster_factory(nodes=1, cores=1)


def test_user_unknown_on_the_node_ends_in_error_saying_so(open_cluster, shared_dir) -> None:  # type: ignore[no-untyped-def]
    script = ("from oar_celery.client import api; "
              f"print(api.submit({{'user': 'oar-ghost-user', 'command': 'true', 'directory': '{shared_dir}', "
              "'resources': ['/core=1']})[0])")
    done = subprocess.run([sys.executable, "-c", script], env={**open_cluster.env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.split()[-1])
    assert open_cluster.wait_for(job_id)[job_id] == "Error"
    assert "user oar-ghost-user is unknown on node" in open_cluster.job(job_id)["message"]
