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


def _parse_properties(pairs: list[str]) -> dict[str, str]:
    properties = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"bad property '{pair}' (expected NAME=VALUE)")
        properties[name] = value
    return properties


def cmd_resources_add(args: argparse.Namespace) -> int:
    from oar_celery.db.models import Resource
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.resources import add_resources, expand_nodeset
    from oar_celery.protocol.bus import notify

    hosts = expand_nodeset(args.nodeset)
    with session_scope() as session:
        if args.skip_existing:
            known = {r for (r,) in session.query(Resource.network_address).distinct()}
            hosts = [host for host in hosts if host not in known]
            if not hosts:
                print("0 resource(s) added: every host has its resources already")
                return 0
        ids = add_resources(
            session, hosts, cpus=args.cpus, cores=args.cores, properties=_parse_properties(args.property)
        )
    print(f"{len(ids)} resource(s) added on {len(hosts)} host(s): {ids[0]}..{ids[-1]}")
    with contextlib.suppress(Exception):  # the broker may not run yet: the next tick catches up
        notify(["ChState"])
    return 0


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
    from oar_celery.node.worker import node_worker_argv, node_worker_env

    return _exec(
        node_worker_argv(args.hostname, config), f"node-{args.hostname}", node_worker_env(args.hostname), args.daemon
    )


def cmd_beat(args: argparse.Namespace) -> int:
    from oar_celery.cluster import beat_argv

    return _exec(beat_argv(settings()), "beat", daemon=args.daemon)


def cmd_flower(args: argparse.Namespace) -> int:
    from oar_celery.cluster import flower_argv, flower_env

    env = flower_env(settings())
    if env:
        print(f"Flower's login: {env['FLOWER_BASIC_AUTH'].partition(':')[0]}, password in {settings().flower_auth}",
              file=sys.stderr, flush=True)
    return _exec(flower_argv(settings(), args.port), "flower", env, daemon=args.daemon)


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


def cmd_up(args: argparse.Namespace) -> int:
    from oar_celery import cluster
    from oar_celery.db.models import Resource
    from oar_celery.db.schema import init_database
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.resources import add_resources

    stop = None if args.detach else StopRequest()
    config = settings()
    problem = cluster.check_broker(config)
    if problem:
        return fail(problem)
    if cluster.pid_file(config).exists():
        return fail(f"a cluster already runs from {config.state_dir}: 'oar-celery down' stops it")
    allow_jobs_of_starter()
    if args.auth:
        cluster.enable_auth(Path(config.state_dir))
        config = settings()
    init_database()
    hosts = [f"node{i}" for i in range(1, args.nodes + 1)]
    with session_scope() as session:
        known = {r for (r,) in session.query(Resource.network_address).distinct()}
        missing = [host for host in hosts if host not in known]
        if missing:
            add_resources(session, missing, cpus=args.cpus, cores=args.cores)
    processes = cluster.start_cluster(config, hosts)
    silent = cluster.wait_for_workers(config, hosts, timeout=args.timeout)
    if silent:
        cluster.stop_cluster(config)
        return fail(f"worker(s) did not start: {', '.join(silent)} (see {config.logs})")
    flower_port = config.flower_port if args.flower_port is None else args.flower_port
    if flower_port:
        processes.append(cluster.start_flower(config, flower_port))
    _print_welcome(processes, args.flower_port, len(hosts), detached=args.detach)
    if stop is None:
        return 0
    return _wait_until_stopped(stop)


def _print_welcome(processes: list, flower_port: int | None, nodes: int, *, detached: bool = False) -> None:
    from oar_celery import cluster

    state = settings()
    port = state.flower_port if flower_port is None else flower_port
    print(f"oar-celery cluster up: {len(processes)} processes, state in {state.state_dir}")
    if port:
        login = "FLOWER_BASIC_AUTH's login" if os.environ.get("FLOWER_BASIC_AUTH") else (
            f"login {cluster.flower_login(state).partition(':')[0]}, password in {state.flower_auth}")
        print(f"Flower: http://{state.flower_address}:{port}/  ({login})")
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

    stopped = cluster.stop_cluster(settings())
    print(f"stopped {len(stopped)} process(es)" if stopped else "no cluster is running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from oar_celery.cli.health import status

    return status(settings(), args.process)


def cmd_doctor(args: argparse.Namespace) -> int:
    from oar_celery.cli.health import doctor

    return doctor(settings(), listen=args.listen)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oar-celery", description="Administer an oar-celery cluster.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("config", help="print the effective settings").set_defaults(func=cmd_config)
    db = sub.add_parser("db", help="the database").add_subparsers(dest="db_command", required=True)
    db.add_parser("init", help="create or upgrade the schema (idempotent)").set_defaults(func=cmd_db_init)
    resources = sub.add_parser("resources", help="resources").add_subparsers(dest="res_command", required=True)
    add = resources.add_parser("add", help="one resource per core for every host of a nodeset")
    add.add_argument("nodeset", help="hosts in ClusterShell's nodeset syntax, e.g. 'node[1-4]'")
    add.add_argument("--cpus", type=int, default=1)
    add.add_argument("--cores", type=int, default=1, help="cores per cpu")
    add.add_argument("-p", "--property", action="append", default=[], metavar="NAME=VALUE")
    add.add_argument("--skip-existing", action="store_true",
                     help="leave out the hosts that have resources already (so that running it again adds nothing)")
    add.set_defaults(func=cmd_resources_add)
    worker = sub.add_parser("worker", help="start a worker (head node or compute node)")
    worker.add_argument("role", choices=("head", "node"))
    worker.add_argument("--hostname", help="the compute node this worker serves")
    worker.add_argument("--daemon", action="store_true", help="detach, output to the log file")
    worker.set_defaults(func=cmd_worker)
    for name, func in (("beat", cmd_beat), ("flower", cmd_flower)):
        command = sub.add_parser(name, help=f"start {name}")
        command.add_argument("--daemon", action="store_true")
        if name == "flower":
            command.add_argument("--port", type=int, default=None)
        command.set_defaults(func=func)
    authd = sub.add_parser("authd", help="serve credentials that prove users' identities to the head")
    authd.add_argument("--daemon", action="store_true")
    authd.set_defaults(func=cmd_authd)
    up = sub.add_parser("up", help="a whole cluster on this machine")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--cores", type=int, default=4, help="cores per cpu")
    up.add_argument("--cpus", type=int, default=1)
    up.add_argument("--flower-port", type=int, default=None, help="0: no Flower")
    up.add_argument("--detach", action="store_true", help="return once the cluster is up")
    up.add_argument("--auth", action="store_true", help="users prove who they are (oar-celery authd)")
    up.add_argument("--timeout", type=float, default=60.0)
    up.set_defaults(func=cmd_up)
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
