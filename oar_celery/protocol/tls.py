"""The job-shell service's keys: a cluster CA, one TLS certificate per node, and the job-key secret.

``oarsub -I``, ``oarsub -C`` and ``oarsh`` talk to a node directly, over TLS,
as ``srun`` talks to ``slurmd``: the client checks the node's certificate
against the cluster's CA (``<keys dir>/tls/ca.pem``, readable by everyone),
and the node believes a connection only with the job's key, an HMAC of the
job under ``<keys dir>/tls/jobshell.key`` that head and nodes share and users
never read. The head gives a job's key to its owner only, through an
authenticated request; the node gives it to the job's own processes (the
``OAR_JOB_KEY_FILE`` of OAR3, for ``oarsh``).

:func:`ensure_cluster_keys` makes whatever is missing; the cluster's start-up
calls it, and a node worker that can read the CA's key makes its own
certificate if it has none (a node added later).
"""

from __future__ import annotations

import datetime
import hmac
import ipaddress
import json
import os
import secrets
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SHARED_KEY = "jobshell.key"
#: How long the certificates made here are valid.
VALIDITY_DAYS = 3650


def tls_dir(keys_dir: str | Path) -> Path:
    return Path(keys_dir) / "tls"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_bytes(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "oar-celery"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: Any, issuer: Any, public_key: Any) -> Any:
    from cryptography import x509

    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS)))


def create_ca(keys_dir: str | Path) -> None:
    """A new CA for the cluster's job-shell services (private key 0600, certificate 0644)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = _new_key()
    name = _name("oar-celery job-shell CA")
    cert = (_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    directory = tls_dir(keys_dir)
    _write_private(directory / CA_KEY, _key_bytes(key))
    _write_public(directory / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))


def _san(host: str, addresses: Iterable[str]) -> Any:
    from cryptography import x509

    names: list[Any] = [x509.DNSName(host)]
    for text in {*addresses, "127.0.0.1"}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError:
            names.append(x509.DNSName(text))
    return x509.SubjectAlternativeName(names)


def create_node_cert(keys_dir: str | Path, host: str, addresses: Iterable[str] = ()) -> None:
    """The certificate of node ``host``'s job-shell service, signed by the cluster's CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    directory = tls_dir(keys_dir)
    ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    key = _new_key()
    cert = (_builder(_name(host), ca_cert.subject, key.public_key())
            .add_extension(_san(host, addresses), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(directory / f"{host}.key", _key_bytes(key))
    _write_public(directory / f"{host}.pem", cert.public_bytes(serialization.Encoding.PEM))


def ensure_cluster_keys(keys_dir: str | Path, hosts: Iterable[str]) -> None:
    """The CA, the shared job-key secret and each node's certificate, made where missing."""
    directory = tls_dir(keys_dir)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    if not (directory / CA_CERT).exists() or not (directory / CA_KEY).exists():
        create_ca(keys_dir)
    if not (directory / SHARED_KEY).exists():
        _write_private(directory / SHARED_KEY, secrets.token_hex(32).encode() + b"\n")
    for host in hosts:
        ensure_node_cert(keys_dir, host)


def ensure_node_cert(keys_dir: str | Path, host: str) -> bool:
    """Make ``host``'s certificate if it is missing and the CA's key is readable; whether it exists."""
    directory = tls_dir(keys_dir)
    if (directory / f"{host}.pem").exists() and (directory / f"{host}.key").exists():
        return True
    if not os.access(directory / CA_KEY, os.R_OK):
        return False
    create_node_cert(keys_dir, host)
    return True


# ---------------------------------------------------------------------------- job keys


def read_shared_key(keys_dir: str | Path) -> bytes:
    return (tls_dir(keys_dir) / SHARED_KEY).read_bytes().strip()


def job_secret(key: bytes, job_id: int, user: str) -> str:
    """The key of one job: it opens a shell in that job, as its user, and nothing else."""
    return hmac.digest(key, f"job-key|{int(job_id)}|{user}".encode(), "sha256").hex()


def ticket_mac(key: bytes, ticket: dict[str, Any]) -> str:
    """The seal of a job's ticket (its user, hosts, CPUs, directory, end): any node of the job trusts it."""
    text = json.dumps(ticket, sort_keys=True, separators=(",", ":"))
    return hmac.digest(key, f"ticket|{text}".encode(), "sha256").hex()


def same(expected: str, given: Any) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected, given)


# ------------------------------------------------------------------------ TLS contexts


def server_context(keys_dir: str | Path, host: str) -> ssl.SSLContext:
    directory = tls_dir(keys_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(directory / f"{host}.pem", directory / f"{host}.key")
    return context


def ca_pem(keys_dir: str | Path) -> str:
    return (tls_dir(keys_dir) / CA_CERT).read_text()


def client_context(keys_dir: str | Path, ca: str | None = None) -> ssl.SSLContext:
    """Trusts the cluster's CA only (``ca``: its PEM text), and checks that the node is the one asked for."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca:
        context.load_verify_locations(cadata=ca)
    else:
        context.load_verify_locations(tls_dir(keys_dir) / CA_CERT)
    context.check_hostname = True
    return context
