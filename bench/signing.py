"""Signing node messages: this project's HMAC envelope against Celery's ``auth`` serializer (X.509).

Both sign and check the same messages: a one-job ``oar.node.launch_many``
(the Runner's message), one of 20 jobs, and a node's ``ended`` report. The
HMAC side is :mod:`oar_celery.protocol.signing` as the head and the nodes call
it (canonical JSON, HMAC-SHA256, the checks of the receiver); the X.509 side
is ``celery.security.serialization.SecureSerializer`` with a 2048-bit RSA key
and its certificate (Celery's defaults: SHA-256), serializing and
deserializing the same kwargs as JSON. The nonce claim (one ``SET NX`` on
Redis) is timed apart: the receiver pays it whichever signature it checks.
Figures are the median of several runs of many iterations, in microseconds
per message, on one core.
"""

from __future__ import annotations

import datetime
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.common import markdown_table, report

RUNS = 5
ITERATIONS = 2_000


def launch_spec(job_id: int) -> dict[str, Any]:
    """A launch spec as the Runner writes it (one core, a short command)."""
    return {
        "job_id": job_id, "user": "alice", "command": "python3 sim.py --step 4", "directory": "/home/alice/run",
        "name": f"sweep-{job_id}", "walltime": 3600, "hosts": ["node12"], "resources": [job_id % 64 + 1],
        "nodefile": "node12\n", "stdout": f"/home/alice/run/OAR.sweep.{job_id}.stdout",
        "stderr": f"/home/alice/run/OAR.sweep.{job_id}.stderr", "env": {"OAR_PROJECT_NAME": "p1"},
        "array_id": job_id, "array_index": 1, "checkpoint": 0, "checkpoint_signal": 12, "project": "p1",
        "types": [], "kill_grace": 5.0, "resource_properties": "resource_id=1 host=node12 core=1\n",
        "cpusets": {"node12": ["3"]},
    }


MESSAGES: dict[str, dict[str, Any]] = {
    "launch_many, 1 job": {"specs": [launch_spec(1)]},
    "launch_many, 20 jobs": {"specs": [launch_spec(i) for i in range(20)]},
    "ended report": {"kind": "ended", "job_id": 41, "host": "node12", "exit_code": 0, "reason": "exited",
                     "message": ""},
}


def per_message_us(step: Callable[[], object], iterations: int, runs: int) -> float:
    """Median over ``runs`` of the mean time of one ``step``, in microseconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(iterations):
            step()
        times.append((time.perf_counter() - started) / iterations * 1e6)
    return statistics.median(times)


def hmac_steps(payload: dict[str, Any]) -> tuple[Callable[[], object], Callable[[], object]]:
    from oar_celery.protocol.signing import HEAD, sign, task_subject, verify

    key = b"0123456789abcdef" * 4
    subject = task_subject("oar.node.launch_many", "node12")
    signature = sign(key, HEAD, subject, payload)
    return (lambda: sign(key, HEAD, subject, payload),
            lambda: verify(key, signature, subject, payload, window=300.0))


def x509_serializer() -> Any:
    """Celery's ``auth`` serializer with a fresh RSA key and self-signed certificate (``celery.security``)."""
    from celery.security.certificate import Certificate, CertStore
    from celery.security.key import PrivateKey
    from celery.security.serialization import SecureSerializer
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oar-head")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30)).sign(private, hashes.SHA256()))
    key_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    certificate = Certificate(cert.public_bytes(serialization.Encoding.PEM))
    store = CertStore()
    store.add_cert(certificate)
    return SecureSerializer(PrivateKey(key_pem), certificate, store, digest="sha256", serializer="json")


def x509_steps(serializer: Any, payload: dict[str, Any]) -> tuple[Callable[[], object], Callable[[], object]]:
    signed = serializer.serialize(payload)
    return (lambda: serializer.serialize(payload), lambda: serializer.deserialize(signed))


def nonce_claim_us(iterations: int, runs: int) -> float | None:
    """One ``SET NX EX`` of a nonce on the benchmark's Redis, None without one."""
    import secrets

    import redis

    from bench.common import redis_url

    client = redis.Redis.from_url(redis_url())
    try:
        client.ping()
    except redis.RedisError:
        return None
    try:
        return per_message_us(lambda: client.set(f"oar:seen:bench:{secrets.token_hex(16)}", b"1", nx=True, ex=5),
                              iterations, runs)
    finally:
        for name in client.scan_iter("oar:seen:bench:*", count=1000):
            client.delete(name)


def head_batch_ms(reports: int, runs: int) -> float | None:
    """The head's check of one batch of signed reports (signatures, then every nonce in one script), in ms."""
    import os
    import tempfile
    from pathlib import Path

    import redis

    from bench.common import redis_url
    from oar_celery.config import settings
    from oar_celery.head.lib.trust import verified_reports
    from oar_celery.protocol.signing import REPORT, create_keys, node_key_path, read_key, sign

    client = redis.Redis.from_url(redis_url())
    try:
        client.ping()
    except redis.RedisError:
        return None
    with tempfile.TemporaryDirectory() as directory:
        keys = Path(directory) / "keys"
        hosts = [f"node{i}" for i in range(1, 17)]
        create_keys(keys, hosts)
        os.environ.update(OAR_KEYS_DIR=str(keys), OAR_BROKER_URL=redis_url(), OAR_SIGNING="auto")
        settings.cache_clear()
        host_keys = {host: read_key(node_key_path(keys, host)) or b"" for host in hosts}
        times = []
        for _ in range(runs):
            batch = []
            for i in range(reports):
                host = hosts[i % len(hosts)]
                report = {**MESSAGES["ended report"], "job_id": i, "host": host}
                batch.append({**report, "sig": sign(host_keys[host], host, REPORT, report)})
            started = time.perf_counter()
            verified = verified_reports(client, batch)
            times.append((time.perf_counter() - started) * 1000)
            assert len(verified.reports) == reports
            verified.release(client)
    return statistics.median(times)


def main(args: list[str], *, write: bool = True) -> None:
    quick = "--quick" in args
    iterations, runs = (300, 3) if quick else (ITERATIONS, RUNS)
    serializer = x509_serializer()
    rows = []
    for label, payload in MESSAGES.items():
        hmac_sign, hmac_check = hmac_steps(payload)
        x509_sign, x509_check = x509_steps(serializer, payload)
        figures = [per_message_us(step, iterations, runs) for step in (hmac_sign, hmac_check, x509_sign, x509_check)]
        rows.append([label, *(f"{value:.1f}" for value in figures), f"{figures[2] / figures[0]:.0f}x"])
    nonce = nonce_claim_us(iterations, runs)
    batch = head_batch_ms(100, max(runs, 5))
    table = markdown_table(["message", "HMAC sign µs", "HMAC check µs", "X.509 sign µs", "X.509 check µs",
                            "X.509 / HMAC (sign)"], rows)
    text = (f"Median of {runs} runs of {iterations} messages each, one core. The receiver's nonce claim "
            f"(`SET NX EX` on Redis, whichever the signature): "
            f"{'no Redis' if nonce is None else f'{nonce:.0f} µs'} per message. The head's check of a batch of "
            f"100 signed reports (signatures, then their nonces in one script): "
            f"{'no Redis' if batch is None else f'{batch:.2f} ms'}.\n\n{table}")
    report("Signed messages", text, "python -m bench signing " + " ".join(args), write=write)
