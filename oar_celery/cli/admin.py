"""``oar-celery``: the admin's command (configuration, database, resources, processes)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from oar_celery.config import settings

EXIT_ERROR = 1


def fail(message: str) -> int:
    print(f"oar-celery: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def cmd_config(_: argparse.Namespace) -> int:
    for name, value in settings().masked().items():
        print(f"OAR_{name.upper()}={value}")
    return 0


def cmd_db_init(_: argparse.Namespace) -> int:
    from oar_celery.db.schema import init_database

    init_database()
    print(f"database ready: {settings().masked()['database_url']}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply the Alembic migrations up to ``--revision`` (default: the newest)."""
    from alembic import command

    from oar_celery.db.schema import alembic_config
    from oar_celery.db.session import get_engine

    engine = get_engine()
    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, args.revision)
    print(f"database at revision {args.revision}: {settings().masked()['database_url']}")
    return 0


def parse_date(text: str) -> float:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM[:SS]``, local time, as an epoch."""
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(text.strip(), pattern))
        except ValueError:
            continue
    raise ValueError(f"bad date '{text}' (expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS')")


def cmd_db_purge(args: argparse.Namespace) -> int:
    """Delete the jobs finished before a date (``archive``: written to a file first); accounting is kept."""
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib import archive

    before = parse_date(args.before)
    target = getattr(args, "to", None)
    if target and Path(target).exists():
        return fail(f"{target} exists already: archive to a new file")
    with session_scope() as session:
        job_ids = archive.finished_before(session, before)
        if target:
            with open(target, "x", encoding="utf-8") as out:
                removed = archive.archive(session, job_ids, out)
        else:
            removed = archive.purge(session, job_ids)
    where = f" (archived to {target})" if target else ""
    print(f"{removed} job(s) finished before {args.before} removed{where}; accounting kept")
    return 0


def cmd_db_reset(args: argparse.Namespace) -> int:
    """Drop every table and create the schema again: for tests and fresh starts only."""
    if not args.yes:
        return fail("db reset deletes every job, resource and queue: give --yes to confirm")
    from sqlalchemy import MetaData

    from oar_celery.db.schema import init_database
    from oar_celery.db.session import get_engine

    engine = get_engine()
    existing = MetaData()
    existing.reflect(bind=engine)
    existing.drop_all(bind=engine)
    init_database()
    print(f"database reset: {settings().masked()['database_url']}")
    return 0


def _parse_properties(pairs: list[str]) -> dict[str, str]:
    properties = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"bad property '{pair}' (expected NAME=VALUE)")
        properties[name] = value
    return properties


def cmd_resources_add(args: argparse.Namespace) -> int:
    """A request to the head, checked for the admin user; ``--offline`` writes itself, before any head runs.

    Only the head writes the database: a user's process, even an admin's,
    holds at most a read-only role. ``--offline`` is for setting a cluster
    up (``db init`` then ``resources add``) with the database owner's
    credentials, when no head worker takes requests yet.
    """
    properties = _parse_properties(args.property)
    if not args.offline:
        from oar_celery.client import api
        from oar_celery.head.lib.resources import expand_nodeset

        lines = api.add_resources(args.nodeset, cpus=args.cpus, cores=args.cores, properties=properties,
                                  node_cpus=args.node_cpus)
        print("\n".join(lines))
        _keys_for_new_nodes(expand_nodeset(args.nodeset))  # where this admin holds the cluster's keys
        return 0
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.resources import add_resources, expand_nodeset, known_hosts
    from oar_celery.protocol.bus import notify

    wanted = expand_nodeset(args.nodeset)
    with session_scope() as session:
        present = known_hosts(session, wanted)
        hosts = [host for host in wanted if host not in present]
        ids = add_resources(
            session, hosts, cpus=args.cpus, cores=args.cores, properties=properties, node_cpus=args.node_cpus,
        ) if hosts else []
    if present:  # idempotent: running the same command twice does not duplicate a host's resources
        print(f"{len(present)} host(s) already have resources, left as they are: {','.join(present)}")
    if ids:
        print(f"{len(ids)} resource(s) added on {len(hosts)} host(s): {ids[0]}..{ids[-1]}")
    _keys_for_new_nodes(hosts)
    with contextlib.suppress(Exception):  # the broker may not run yet: the next tick catches up
        notify(["ChState"])
    return 0


def _keys_for_new_nodes(hosts: list[str]) -> None:
    """A cluster that signs its messages (its keys directory exists) gets a key for each new node."""
    from oar_celery.protocol.signing import create_keys, signing_on

    config = settings()
    if hosts and signing_on(config) and os.access(config.keys / "nodes", os.W_OK):
        created = create_keys(config.keys, hosts)
        if created:
            print(f"{len(created)} node key(s) made in {config.keys / 'nodes'}: copy each to its node")


def cmd_keys(args: argparse.Namespace) -> int:
    """Make the cluster's keys, those missing only: ``head.key`` and one key per node for signed node
    messages, and the job shells' CA, node certificates and job-key secret (``tls/``)."""
    from oar_celery.protocol.signing import create_keys
    from oar_celery.protocol.tls import ensure_cluster_keys

    config = settings()
    if args.nodes:
        from oar_celery.head.lib.resources import expand_nodeset

        try:
            hosts: list[str] | None = expand_nodeset(args.nodes)
        except Exception as error:  # noqa: BLE001 - a bad nodeset: its one line
            return fail(str(error))
    else:
        hosts = _resource_hosts()
    if hosts is None:
        return fail("cannot read the resources' hosts from the database: name them with --nodes h1,h2")
    try:
        created = create_keys(config.keys, hosts)
        ensure_cluster_keys(config.keys, hosts)
    except (OSError, ValueError) as error:
        return fail(f"cannot make the keys in {config.keys}: {error}")
    print(f"{len(created)} key(s) made in {config.keys} ({len(hosts)} node(s), existing keys kept)")
    print(f"each node needs its own {config.keys / 'nodes'}/<host>.key (mode 0600), and no other;"
          f" job shells: {config.keys / 'tls'}/ca.pem, jobshell.key and its <host>.pem and <host>.key")
    return 0


def _resource_hosts() -> list[str] | None:
    """Every host of the resources table, None without a database."""
    from oar_celery.db.models import Resource
    from oar_celery.db.session import session_scope

    try:
        with session_scope() as session:
            return sorted({host for (host,) in session.query(Resource.network_address).distinct()})
    except Exception:  # noqa: BLE001 - no database: the caller says so in one line
        return None


def _exec(argv: list[str], kind: str, extra_env: dict[str, str] | None = None, daemon: bool = False) -> int:
    env = {**os.environ, "OAR_PROCESS_KIND": kind, **(extra_env or {})}
    if daemon:
        from oar_celery.logs import log_file, redirect_everything

        child = os.fork()
        if child:
            print(f"{kind} started in the background: pid {child}, log {log_file(kind)}")
            return 0
        os.setsid()
        redirect_everything(kind)
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


def cmd_worker(args: argparse.Namespace) -> int:
    config = settings()
    if args.role == "head":
        from oar_celery.cluster import head_worker_argv

        return _exec(head_worker_argv(config), "head", daemon=args.daemon)
    if not args.hostname:
        return fail("a node worker needs --hostname NAME")
    if args.stop_jobs:
        return _stop_node_jobs(args.hostname)
    from oar_celery.node.worker import node_worker_argv, node_worker_env

    return _exec(
        node_worker_argv(args.hostname, config), f"node-{args.hostname}", node_worker_env(args.hostname), args.daemon
    )


def _stop_node_jobs(host: str) -> int:
    """End every job of node ``host`` (run on that node); the worker itself keeps running."""
    os.environ["OAR_NODE_HOSTNAME"] = host
    from oar_celery.celery_app import app
    from oar_celery.node.drain import running_jobs, stop_jobs

    config = settings()
    count = len(running_jobs(config, host))
    left = stop_jobs(app, config, host)
    if left:
        return fail(f"jobs {', '.join(map(str, left))} of {host} did not end")
    print(f"{count} job(s) of {host} stopped")
    return 0


def cmd_beat(args: argparse.Namespace) -> int:
    from oar_celery.cluster import beat_argv

    return _exec(beat_argv(settings()), "beat", daemon=args.daemon)


def cmd_flower(args: argparse.Namespace) -> int:
    from oar_celery.cluster import flower_argv, flower_env

    env = flower_env(settings())
    if "FLOWER_BASIC_AUTH" in env:
        print(f"Flower's login: {env['FLOWER_BASIC_AUTH'].partition(':')[0]}, password in {settings().flower_auth}",
              file=sys.stderr, flush=True)
    elif settings().flower_open:
        print("warning: Flower asks for no login (OAR_FLOWER_OPEN=yes)", file=sys.stderr, flush=True)
    return _exec(flower_argv(settings(), args.port), "flower", env, daemon=args.daemon)


def cmd_api(args: argparse.Namespace) -> int:
    """The REST API and the web views (``python -m oar_celery.api``), or a token for a user."""
    from oar_celery.cluster import api_argv

    options = [(f"--{name.replace('_', '-')}", value) for name in ("port", "address", "socket", "root_path")
               if (value := getattr(args, name)) is not None]
    argv = [*api_argv(), *(part for pair in options for part in map(str, pair)), *args.action]
    if args.daemon:
        return _exec(argv, "api", daemon=True)
    os.execvp(argv[0], argv)
    return 0  # not reached


def allow_jobs_of_starter() -> None:
    """A local cluster runs jobs as the user who started it, so root's own if root started it.

    Production refuses jobs of root (``OAR_ALLOW_ROOT_JOBS`` off); an explicit
    ``OAR_ALLOW_ROOT_JOBS`` in the environment still wins.
    """
    if os.geteuid() == 0:
        os.environ.setdefault("OAR_ALLOW_ROOT_JOBS", "yes")


def cmd_authd(args: argparse.Namespace) -> int:
    """Serve credentials to this machine's users (see oar_celery.protocol.auth)."""
    from oar_celery.protocol.auth import read_key, serve

    config = settings()
    if not config.auth_key_file or not config.auth_socket:
        return fail("authd needs OAR_AUTH_KEY_FILE and OAR_AUTH_SOCKET")
    key = read_key(config.auth_key_file)
    if args.daemon:
        from oar_celery.logs import redirect_everything

        if os.fork():
            return 0
        os.setsid()
        redirect_everything("authd")
    serve(config.auth_socket, key)
    return 0


def cmd_acl(args: argparse.Namespace) -> int:
    """Print the broker's ACL file for a real cluster; each user's URL, with its password, in a file of its own."""
    from urllib.parse import unquote, urlsplit

    from ClusterShell.NodeSet import NodeSet, NodeSetParseError

    from oar_celery.cluster import write_private
    from oar_celery.protocol import broker_acl

    try:
        hosts = [broker_acl.check_host(host) for host in NodeSet(args.nodes or "")]
        people = [name for name in args.users.split(",") if name]
        for name in people:
            broker_acl.personal_user(name)
    except (NodeSetParseError, ValueError) as error:
        return fail(f"bad --nodes or --users: {error}")
    if not hosts:
        return fail(f"--nodes '{args.nodes}' names no node")
    directory = Path(args.secrets or Path(settings().state_dir) / "broker")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = args.url or settings().broker_url
    passwords = broker_acl.new_passwords(hosts, people)
    for user in passwords:  # a user's password is kept from one run to the next
        path = directory / f"{user}.url"
        if path.exists():
            passwords[user] = unquote(urlsplit(path.read_text().strip()).password or passwords[user])
        write_private(path, broker_acl.url_for(base, user, passwords[user]) + "\n")
    db = int(urlsplit(base).path.strip("/") or 0)
    sys.stdout.write(broker_acl.acl_file(hosts, passwords, db=db, anonymous=not args.no_anonymous, people=people))
    print(f"each user's URL is in {directory}/<user>.url (mode 0600): give each process its own "
          "(OAR_BROKER_URL_FILE)", file=sys.stderr)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from oar_celery import cluster
    from oar_celery.db.models import Resource
    from oar_celery.db.schema import init_database
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.resources import add_resources

    stop = None if args.detach else StopRequest()
    config = settings()
    problem = None if args.auth else cluster.check_broker(config)
    if problem:
        return fail(problem)
    if cluster.pid_file(config).exists():
        return fail(f"a cluster already runs from {config.state_dir}: 'oar-celery down' stops it")
    allow_jobs_of_starter()
    hosts = [f"node{i}" for i in range(1, args.nodes + 1)]
    broker = None
    if args.auth:
        cluster.enable_auth(Path(config.state_dir))
        try:
            broker = cluster.start_own_broker(settings(), hosts)
        except (OSError, ValueError) as error:
            return fail(f"cannot start the cluster's own Redis with its ACL (redis-server 7 or newer): {error}")
        except Exception as error:  # noqa: BLE001 - redis-py's errors: it never answered
            return fail(f"the cluster's own Redis did not answer ({error}); see {settings().logs}/oar-redis.out")
    cluster.enable_api_tokens(Path(config.state_dir))
    config = settings()
    init_database()
    with session_scope() as session:
        known = {r for (r,) in session.query(Resource.network_address).distinct()}
        missing = [host for host in hosts if host not in known]
        if missing:
            add_resources(session, missing, cpus=args.cpus, cores=args.cores, node_cpus=os.cpu_count() or 1)
    cluster.enable_signing(config, sorted(known | set(hosts)))  # nodes started by hand too
    processes = cluster.start_cluster(config, hosts, api_port=args.api_port, broker=broker)
    silent = cluster.wait_for_workers(config, hosts, timeout=args.timeout)
    if silent:
        cluster.stop_cluster(config)
        return fail(f"worker(s) did not start: {', '.join(silent)} (see {config.logs})")
    flower_port = config.flower_port if args.flower_port is None else args.flower_port
    if flower_port:
        processes.append(cluster.start_flower(config, flower_port))
    _print_welcome(processes, args.flower_port, args.api_port, len(hosts), detached=args.detach)
    if stop is None:
        return 0
    return _wait_until_stopped(stop)


def _print_welcome(
    processes: list, flower_port: int | None, api_port: int | None, nodes: int, *, detached: bool = False
) -> None:
    from oar_celery import cluster

    state = settings()
    port = state.flower_port if flower_port is None else flower_port
    api = state.api_port if api_port is None else api_port
    print(f"oar-celery cluster up: {len(processes)} processes, state in {state.state_dir}")
    if port:
        login = "FLOWER_BASIC_AUTH's login" if os.environ.get("FLOWER_BASIC_AUTH") else (
            f"login {cluster.flower_login(state).partition(':')[0]}, password in {state.flower_auth}")
        print(f"Flower: http://{state.flower_address}:{port}/  ({login})")
    if api:
        where = f"http://{state.api_address}:{api}"
        print(f"REST API: {where}/  (Gantt {where}/drawgantt, nodes {where}/monika)")
        print("API token: oar-celery api token USER")
    if state.metrics_port:
        print(f"Metrics: http://{state.metrics_address}:{state.metrics_port}/metrics")
    if any(p.name == "redis" for p in processes):
        from oar_celery.config import read_conf_file

        users = read_conf_file(Path(state.state_dir) / "oar.conf")["OAR_BROKER_URL"]
        print(f"Broker: {users}, the cluster's own, with ACL roles (named in oar.conf: unset OAR_BROKER_URL; "
              f"each process's own URL is in {cluster.broker_dir(state)})")
    print(f"Submit a job:   oarsub -l /nodes={min(nodes, 2)}/core=1 'hostname; sleep 5'")
    print("Watch it:       oarstat   |   oarnodes")
    how = "'oar-celery down'" if detached else "Ctrl-C here, or 'oar-celery down'"
    print(f"Stop:           {how}   (logs in {state.logs})", flush=True)


class StopRequest:
    """Ctrl-C or SIGTERM, caught from the moment ``up`` starts: a signal during start-up is not lost."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, *_: object) -> None:
        self.requested = True


def _wait_until_stopped(stop: StopRequest) -> int:
    from oar_celery import cluster

    while not stop.requested and cluster.pid_file(settings()).exists():
        time.sleep(0.2)
    cluster.stop_cluster(settings())
    print("oar-celery cluster stopped", flush=True)
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    from oar_celery import cluster

    cluster.become_head_client(settings())  # a cluster with its own broker: ends its jobs through it
    stopped = cluster.stop_cluster(settings())
    print(f"stopped {len(stopped)} process(es)" if stopped else "no cluster is running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from oar_celery.cli.health import status
    from oar_celery.cluster import become_head_client

    become_head_client(settings())  # a local cluster's own broker: the users' role would see nothing
    return status(settings(), args.process)


def cmd_doctor(args: argparse.Namespace) -> int:
    from oar_celery.cli.health import doctor
    from oar_celery.cluster import become_head_client

    become_head_client(settings())
    return doctor(settings(), listen=args.listen)


def cmd_admission(args: argparse.Namespace) -> int:
    from oar_celery.cli import oaradmissionrules

    return oaradmissionrules.main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oar-celery", description="Administer an oar-celery cluster.")
    from oar_celery.cli.common import version_text

    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("config", help="print the effective settings").set_defaults(func=cmd_config)
    db = sub.add_parser("db", help="the database").add_subparsers(dest="db_command", required=True)
    db.add_parser("init", help="create or upgrade the schema (idempotent)").set_defaults(func=cmd_db_init)
    upgrade = db.add_parser("upgrade", help="apply the Alembic migrations")
    upgrade.add_argument("--revision", default="head", help="target revision (default: the newest)")
    upgrade.set_defaults(func=cmd_db_upgrade)
    for name, text in (("purge", "delete"), ("archive", "write to a JSON-lines file, then delete")):
        command = db.add_parser(name, help=f"{text} the jobs finished before a date (accounting is kept)")
        command.add_argument("--before", required=True, metavar="DATE", help="YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS'")
        if name == "archive":
            command.add_argument("--to", required=True, metavar="FILE", help="a new file for the archived jobs")
        command.set_defaults(func=cmd_db_purge)
    reset = db.add_parser("reset", help="drop every table and create the schema again (tests)")
    reset.add_argument("--yes", action="store_true", help="yes, delete everything")
    reset.set_defaults(func=cmd_db_reset)
    resources = sub.add_parser("resources", help="resources").add_subparsers(dest="res_command", required=True)
    add = resources.add_parser("add", help="one resource per core for every host of a nodeset")
    add.add_argument("nodeset", help="hosts in ClusterShell's nodeset syntax, e.g. 'node[1-4]'")
    add.add_argument("--cpus", type=int, default=1)
    add.add_argument("--cores", type=int, default=1, help="cores per cpu")
    add.add_argument("-p", "--property", action="append", default=[], metavar="NAME=VALUE")
    add.add_argument("--node-cpus", type=int, default=None, metavar="N",
                     help="CPUs each host really has: the cores' cpusets wrap around them (default: one per core)")
    add.add_argument("--skip-existing", action="store_true",
                     help="leave out the hosts that have resources already (always so now)")
    add.add_argument("--offline", action="store_true",
                     help="write to the database directly, before any head worker runs (setup, owner's credentials)")
    add.set_defaults(func=cmd_resources_add)
    worker = sub.add_parser("worker", help="start a worker (head node or compute node)")
    worker.add_argument("role", choices=("head", "node"))
    worker.add_argument("--hostname", help="the compute node this worker serves")
    worker.add_argument("--daemon", action="store_true", help="detach, output to the log file")
    worker.add_argument("--stop-jobs", action="store_true",
                        help="instead of starting the worker, end every job of the node (stopping a worker does not)")
    worker.set_defaults(func=cmd_worker)
    for name, func in (("beat", cmd_beat), ("flower", cmd_flower)):
        command = sub.add_parser(name, help=f"start {name}")
        command.add_argument("--daemon", action="store_true")
        if name == "flower":
            command.add_argument("--port", type=int, default=None)
        command.set_defaults(func=func)
    api = sub.add_parser("api", help="serve the REST API and web views; 'api token USER' prints a token")
    api.add_argument("--daemon", action="store_true", help="detach, output to the log file")
    api.add_argument("--port", type=int, help="TCP port (default OAR_API_PORT)")
    api.add_argument("--address", help="address to listen on (default OAR_API_ADDRESS)")
    api.add_argument("--socket", help="serve on this Unix socket instead (OAR_API_SOCKET)")
    api.add_argument("--root-path", help="the prefix the front web server serves the API at")
    api.add_argument("action", nargs="*", metavar="token USER", help="print an API token for USER")
    api.set_defaults(func=cmd_api)
    authd = sub.add_parser("authd", help="serve credentials that prove users' identities to the head")
    authd.add_argument("--daemon", action="store_true")
    authd.set_defaults(func=cmd_authd)
    acl = sub.add_parser("acl", help="the broker's ACL file (Redis 7+): a user for the head, each node, users")
    acl.add_argument("--nodes", required=True, help="the compute nodes, in nodeset syntax: 'node[1-64]'")
    acl.add_argument("--url", help="the broker's URL without credentials (default OAR_BROKER_URL)")
    acl.add_argument("--secrets", metavar="DIR", help="where each user's URL is kept (default <state dir>/broker)")
    acl.add_argument("--users", default="", metavar="NAME,...",
                     help="people who get a broker user each (oar-user-NAME), with the users' rules")
    acl.add_argument("--no-anonymous", action="store_true",
                     help="connections without a password are refused (users then need oar-user's)")
    acl.set_defaults(func=cmd_acl)
    up = sub.add_parser("up", help="a whole cluster on this machine")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--cores", type=int, default=4, help="cores per cpu")
    up.add_argument("--cpus", type=int, default=1)
    up.add_argument("--flower-port", type=int, default=None, help="0: no Flower")
    up.add_argument("--api-port", type=int, default=None, help="the REST API's port (default OAR_API_PORT; 0: none)")
    up.add_argument("--detach", action="store_true", help="return once the cluster is up")
    up.add_argument("--auth", action="store_true", help="users prove who they are (oar-celery authd)")
    up.add_argument("--timeout", type=float, default=60.0)
    up.set_defaults(func=cmd_up)
    keys = sub.add_parser("keys", help="make the keys of signed node messages (head.key, nodes/<host>.key)")
    keys.add_argument("--nodes", metavar="NODESET", help="h1,h2 or node[1-4] (default: every resource's host)")
    keys.set_defaults(func=cmd_keys)
    sub.add_parser("down", help="stop the cluster started by 'up'").set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="each process: alive, and taking work through its own queue")
    status.add_argument("--process", metavar="NAME", help="only this one (head, node1...): exit 0 if it is healthy")
    status.set_defaults(func=cmd_status)
    doctor = sub.add_parser("doctor", help="check a deployment: broker, keys, database schema, clocks")
    doctor.add_argument("--listen", type=float, default=3.0, metavar="SECONDS",
                        help="how long to listen to the workers' heartbeats for their clocks")
    doctor.set_defaults(func=cmd_doctor)
    sub.add_parser(
        "completion", help="bash code that completes the commands' options: eval \"$(oar-celery completion)\""
    ).set_defaults(func=cmd_completion)
    admission = sub.add_parser("admission", help="admission rules (as oaradmissionrules)", add_help=False)
    admission.add_argument("rest", nargs=argparse.REMAINDER)
    admission.set_defaults(func=cmd_admission)
    return parser


def cmd_completion(_: argparse.Namespace) -> int:
    """The shell code that completes every command's options: ``eval "$(oar-celery completion)"``."""
    import argcomplete

    from oar_celery.cli.common import COMMANDS

    print(argcomplete.shellcode(list(COMMANDS), shell="bash"))
    return 0


def main(argv: list[str] | None = None) -> int:
    from oar_celery.cli.common import offer_completion

    offer_completion(build_parser)
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - one line, never a traceback
        from oar_celery.config import mask

        line = str(error).splitlines()[0] if str(error) else type(error).__name__
        return fail(mask(line))


if __name__ == "__main__":
    sys.exit(main())
