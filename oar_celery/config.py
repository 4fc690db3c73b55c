"""Settings, read from the environment and an optional OAR-style file.

Every setting has an ``OAR_*`` environment variable; the file named by
``OAR_CONFIG_FILE`` (default ``<state dir>/oar.conf``, then ``/etc/oar/oar.conf``)
holds ``NAME="value"`` lines with the same names. The environment wins over
the file, the file over the defaults. Secrets can come from files: a setting
``OAR_DATABASE_URL_FILE`` is read as the value of ``OAR_DATABASE_URL``; either
form in the environment wins over both in the file.

A name that is no setting (``OAR_SCHEDULER_MIN_TIM``) is a typo that would
otherwise go unseen: the process says so on one line of its standard error,
with the closest setting's name.
"""

from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pathlib is imported where a path is made: a user command that needs none saves its import
    from pathlib import Path

_LINE = re.compile(r"""^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|(.*?))\s*$""")
# The password runs to the last "@" of the URL's authority (a password may hold "@").
_SECRET_IN_URL = re.compile(r"(://[^:/@?#\s]*:)([^/?#\s]*)(@)")
_SECRET_IN_QUERY = re.compile(r"([?&](?:password|passwd)=)([^&#\s]*)", re.IGNORECASE)


#: ``OAR_*`` names that are not settings: a job's environment, a process's role, compose's inputs.
NOT_SETTINGS = frozenset({
    "OAR_CONFIG_FILE", "OAR_PROCESS_KIND", "OAR_NODE_HOSTNAME",
    "OAR_JOB_ID", "OAR_JOBID", "OAR_NODEFILE", "OAR_NODE_FILE", "OAR_FILE_NODES", "OAR_RESOURCE_FILE",
    "OAR_WORKDIR", "OAR_WORKING_DIRECTORY", "OAR_O_WORKDIR", "OAR_JOB_NAME", "OAR_JOB_WALLTIME",
    "OAR_JOB_WALLTIME_SECONDS", "OAR_USER", "OAR_ARRAY_ID", "OAR_ARRAY_INDEX", "OAR_PROJECT_NAME", "OAR_STDOUT",
    "OAR_STDERR", "OAR_JOB_KEY_FILE", "OAR_ARRAYID", "OAR_ARRAYINDEX", "OAR_CPUSET", "OAR_JOB_USER",
    "OAR_RESOURCE_PROPERTIES_FILE", "OAR_DB_PASSWORD", "OAR_REDIS_PASSWORD", "OAR_FLOWER_BASIC_AUTH",
})
#: Prefixes of the test suite's and the benchmarks' own variables.
NOT_SETTINGS_PREFIXES = ("OAR_TEST_", "OAR_BENCH_")


def _default_state_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".oar-celery")


def _path(configured: str, state_dir: str, default: str) -> Path:
    """The configured path, or ``default`` inside the state directory."""
    from pathlib import Path

    return Path(configured or os.path.join(state_dir, default))


class Settings:
    """The effective configuration of one process, read-only.

    Names mirror OAR's ``oar.conf`` where OAR has one: ``OAR_SCHEDULER_MIN_TIME``
    is OAR's SCHEDULER_MIN_TIME_BETWEEN_2_CALLS, ``OAR_LEON_SOFT_WALLTIME`` and
    ``OAR_LEON_WALLTIME`` are Leon's timers, ``OAR_DEAD_SWITCH_TIME`` turns old
    ``Suspected`` resources ``Dead``. ``OAR_ALLOW_ROOT_JOBS`` is off: a production
    cluster refuses jobs of root unless told otherwise (``oar-celery up`` tells it).

    Each annotated class attribute is a setting and its default; an instance
    holds the values given to it. Not a dataclass: every user command reads
    its settings, and :mod:`dataclasses` (with :mod:`inspect`) and the methods
    it writes for 88 fields cost ``oarsub`` more than its request takes.
    """

    #: default: ``~/.oar-celery`` of the user running the process
    state_dir: str = ""
    database_url: str = ""
    #: PostgreSQL's cost of a random page read for this project's connections (0: the server's own).
    #: The default 4 prices a disk seek; the tables a cycle reads by key sit in memory.
    db_random_page_cost: float = 1.1
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = ""
    log_dir: str = ""
    log_level: str = "INFO"
    admin_user: str = "oar"
    allow_root_jobs: bool = False
    run_as_submitter: bool = False
    task_events: bool = False
    default_walltime: int = 7200
    default_queue: str = "default"
    hierarchy_labels: str = "resource_id,network_address,host,cpu,core,switch"
    scheduler_resource_order: str = "resource_id"
    security_time: int = 60
    scheduler_min_time: float = 1.0  # OAR3's default (OAR 2.5: 5 s); quick rounds fill free cores meanwhile
    almighty_tick: float = 5.0
    almighty_lock_ttl: float = 60.0
    sarko_period: float = 5.0
    finaud_period: float = 10.0
    finaud_timeout: float = 5.0
    node_change_state_period: float = 10.0
    leon_soft_walltime: int = 20
    leon_walltime: int = 300
    kill_grace: float = 5.0
    dead_switch_time: int = 0
    reservation_answer_timeout: float = 30.0
    client_timeout: float = 30.0
    #: Hostile input: bounds every submission is checked against, by the command and again by the head.
    max_command_size: int = 64 * 1024
    max_walltime: int = 366 * 24 * 3600
    max_filter_depth: int = 16
    #: The most jobs one submission may make (``--array N``, or the lines of ``--array-param-file``): one
    #: transaction inserts them all, and a head process is busy with nothing else meanwhile.
    max_array_size: int = 100_000
    node_state_dir: str = ""
    head_concurrency: int = 2
    prologue: str = ""
    epilogue: str = ""
    #: Where the node finds its cgroup hierarchies (v2 unified, or v1 cpuset/memory/freezer under it).
    cgroup_root: str = "/sys/fs/cgroup"
    #: The directory of the jobs' cgroups in each hierarchy (OAR's ``oar``): ``<root>/<name>/<host>/<job id>``.
    #: Local clusters (``oar-celery up``) take one of their own, so that two on one machine never meet.
    cgroup_name: str = "oar"
    #: Ask the kernel to favour cgroup changes over forks (its ``favordynmods``), once, at the node's start:
    #: otherwise moving a job's keeper into its cgroup waits for an RCU grace period, 5-17 ms of each job's start.
    cgroup_favordynmods: bool = True
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    mail_sender: str = "oar@localhost"
    admin_mail: str = ""
    notify_timeout: float = 10.0
    flower_address: str = "127.0.0.1"
    flower_port: int = 5555
    flower_auth_file: str = ""
    #: Flower without any login: only when explicitly told (a trusted, closed network).
    flower_open: bool = False
    flower_refresh: float = 60.0
    metrics_port: int = 9150
    metrics_address: str = "127.0.0.1"
    #: The REST API and its web pages (``oar-celery api``, started by ``up``); 0: not started by ``up``.
    api_port: int = 6680
    api_address: str = "127.0.0.1"
    #: A Unix socket to serve the API on instead of TCP: the front web server's identity header is believed there.
    api_socket: str = ""
    #: OAR3's API_TRUST_IDENT: believe the front web server's ``X-Remote-Ident`` header...
    api_trust_ident: bool = True
    #: ...from these peer addresses only (comma separated), or over ``api_socket``.
    api_trusted_proxies: str = ""
    #: OAR3's API_SECRET_KEY (HS256 tokens); empty: no tokens.
    api_secret_key: str = ""
    api_token_minutes: int = 10080
    #: OAR3's API_REVOKED_TOKENS: a JSON file ``{"global": date, "revoked": {user: date}}``.
    api_revoked_tokens: str = ""
    #: OAR3's API_DEFAULT_MAX_ITEMS_NUMBER: the largest page a listing returns.
    api_max_items: int = 500
    visibility_timeout: int = 3600
    auth_key_file: str = ""
    auth_socket: str = ""
    #: Where the cluster's keys live: ``head.key`` and ``nodes/<host>.key`` of signed node messages
    #: (``oar-celery keys``), the job-shell's TLS files under ``tls/``; default ``<state dir>/keys``.
    keys_dir: str = ""
    #: The address a node's job-shell service (``oarsub -I``, ``oarsh``) listens on and gives out; empty: the
    #: address this node reaches the broker from. Port 0: one the system picks, published on the broker.
    jobshell_address: str = ""
    jobshell_port: int = 0
    #: Seconds an ``oarsub -I`` client has to open its shell once its job runs; a client lost before: the job is killed.
    interactive_connect_timeout: float = 60.0
    #: The one key a node reads, its own (default ``<keys_dir>/nodes/<host>.key``).
    node_key_file: str = ""
    #: ``auto``: node tasks and reports are signed and checked wherever the keys exist; ``off``: never.
    signing: str = "auto"
    #: Seconds a signed message stays good (clock skew plus a queue wait); its nonce is kept twice as long.
    signature_window: float = 300.0
    #: the admin's admission rule modules, ``pkg.mod`` or ``pkg.mod:func``, comma-separated
    admission_rules: str = ""
    #: ``queue=H:MM:SS,...``: the longest walltime each listed queue accepts
    queue_max_walltime: str = ""
    #: where cosystem and deploy jobs run (OAR's COSYSTEM_HOSTNAME / DEPLOY_HOSTNAME): a node's name
    cosystem_hostname: str = ""
    deploy_hostname: str = ""
    #: cluster-wide counters for ``-t token:NAME=N``: ``NAME=TOTAL,...``
    tokens: str = ""
    #: OAR's ACCOUNTING_WINDOW: the length of one ``accounting`` window, seconds.
    accounting_window: int = 86400
    #: OAR's karma (FAIRSHARING_ENABLED and SCHEDULER_FAIRSHARING_*): off unless configured.
    fairsharing_enabled: bool = False
    scheduler_fairsharing_window_size: int = 3600 * 30 * 24
    scheduler_fairsharing_project_targets: str = "{default => 21.0}"
    scheduler_fairsharing_user_targets: str = "{default => 22.0}"
    scheduler_fairsharing_coef_project: float = 0.0
    scheduler_fairsharing_coef_user: float = 1.0
    scheduler_fairsharing_coef_user_ask: float = 1.0
    #: OAR3's QUOTAS: rules in a JSON file, read again when it changes.
    quotas: bool = False
    quotas_conf_file: str = "/etc/oar/quotas_conf.json"
    #: OAR3's WALLTIME_CHANGE_*: oarwalltime requests, granted by the scheduler when the Gantt allows them.
    walltime_change_enabled: bool = False
    #: seconds, ``-1`` for no limit, a fraction (<= 1.0) of the walltime, or per queue: ``{'default': 7200, '_': 3600}``
    walltime_max_increase: str = "7200"
    walltime_min_for_change: str = "0"
    #: users who may delay the next jobs (``*``: everyone), per queue as above
    walltime_allowed_users_to_delay_jobs: str = ""

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{os.path.join(self.state_dir, 'oar.db')}"

    @property
    def backend(self) -> str:
        return self.result_backend or self.broker_url

    @property
    def logs(self) -> Path:
        return _path(self.log_dir, self.state_dir, "log")

    @property
    def flower_auth(self) -> Path:
        """The file of Flower's ``user:password`` login."""
        return _path(self.flower_auth_file, self.state_dir, "flower.auth")

    @property
    def keys(self) -> Path:
        """The cluster's keys directory (``OAR_KEYS_DIR``, default ``<state dir>/keys``)."""
        return _path(self.keys_dir, self.state_dir, "keys")

    @property
    def node_dir(self) -> Path:
        return _path(self.node_state_dir, self.state_dir, "nodes")

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label.strip() for label in self.hierarchy_labels.split(",") if label.strip())

    def is_admin(self, user: str) -> bool:
        return user in ("root", self.admin_user)

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(setting_types()))
        if unknown:
            raise TypeError(f"no such setting: {', '.join(unknown)}")
        if "state_dir" not in values:
            values["state_dir"] = _default_state_dir()
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"settings are read-only (use replace): {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"settings are read-only: {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.values() == other.values()

    def __hash__(self) -> int:
        return hash(tuple(self.values().items()))

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in self.__dict__.items())})"

    def values(self) -> dict[str, Any]:
        """Every setting's value, defaults included, in the order of the class."""
        return {name: getattr(self, name) for name in setting_types()}

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, as :func:`dataclasses.replace` makes one."""
        return Settings(**{**self.__dict__, **changes})

    def masked(self) -> dict[str, Any]:
        """Every setting with passwords in URLs replaced by ``****``."""
        values = self.values()
        values["database_url"] = self.database
        values["result_backend"] = self.backend
        if self.api_secret_key:
            values["api_secret_key"] = "****"
        return {name: mask(value) if isinstance(value, str) else value for name, value in values.items()}


def mask(text: str) -> str:
    """Hide the password of a URL such as ``redis://user:secret@host`` or ``redis://host?password=secret``."""
    return _SECRET_IN_QUERY.sub(r"\1****", _SECRET_IN_URL.sub(r"\1****\3", text))


def read_conf_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Parse OAR's ``NAME="value"`` file format; comments start with ``#``."""
    values: dict[str, str] = {}
    with open(path) as conf:
        text = conf.read()
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match:
            name, *value = match.groups()
            values[name] = next(v for v in value if v is not None)
    return values


def _convert(kind: Any, text: str) -> Any:
    if kind in (bool, "bool"):
        return text.strip().lower() in ("1", "yes", "true", "on")
    if kind in (int, "int"):
        return int(text)
    if kind in (float, "float"):
        return float(text)
    return text


def _read_file_for(env: dict[str, str]) -> dict[str, str]:
    """The settings of the first file found: ``OAR_CONFIG_FILE``, ``<state dir>/oar.conf``, ``/etc/oar/oar.conf``."""
    state_dir = env.get("OAR_STATE_DIR") or _default_state_dir()
    for candidate in (env.get("OAR_CONFIG_FILE"), os.path.join(state_dir, "oar.conf"), "/etc/oar/oar.conf"):
        if candidate and os.path.isfile(candidate):
            return read_conf_file(candidate)
    return {}


@lru_cache(maxsize=1)
def setting_types() -> dict[str, str]:
    """Every setting's name and type (``str``, ``int``, ``float``, ``bool``), in the order of the class."""
    return dict(Settings.__annotations__)


def setting_names() -> list[str]:
    """Every setting's variable, ``OAR_STATE_DIR`` ...; each also takes a ``_FILE`` form."""
    return ["OAR_" + name.upper() for name in setting_types()]


def unknown_settings(environ: dict[str, str] | None = None) -> list[str]:
    """``OAR_*`` names of the environment and the file that are no setting, each with its closest setting."""
    env = dict(os.environ if environ is None else environ)
    known = setting_names()
    valid = set(known) | {name + "_FILE" for name in known} | NOT_SETTINGS
    unknown = []
    for name in sorted({*_read_file_for(env), *env}):
        if not name.startswith("OAR_") or name in valid or name.startswith(NOT_SETTINGS_PREFIXES):
            continue
        import difflib  # only for a typo's hint: not paid by every command

        close = difflib.get_close_matches(name, sorted(valid - NOT_SETTINGS), n=1, cutoff=0.8)
        unknown.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return unknown


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build the settings from the defaults, the file, then the environment."""
    env = dict(os.environ if environ is None else environ)
    from_file = _read_file_for(env)
    values: dict[str, Any] = {}
    for name, kind in setting_types().items():
        key = "OAR_" + name.upper()
        raw = _value(env, key)
        if raw is None:
            raw = _value(from_file, key)
        if raw is not None:
            try:
                values[name] = _convert(kind, raw)
            except ValueError:
                raise ValueError(f"{key} must be {'an' if kind == 'int' else 'a'} {kind}, not {raw!r}") from None
    return Settings(**values)


def _value(source: dict[str, str], key: str) -> str | None:
    """``key``'s value in one source, itself or read from its ``_FILE``: the environment's wins over the file's.

    So a process given ``OAR_BROKER_URL_FILE`` (its own credentials) uses it even
    where ``oar.conf`` names the users' broker URL.
    """
    if key in source:
        return source[key]
    secret_file = source.get(key + "_FILE")
    if not secret_file:
        return None
    with open(secret_file) as secret:
        return secret.read().strip()


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read once; unknown ``OAR_*`` names said on one line of stderr."""
    loaded = load_settings()
    unknown = unknown_settings()
    if unknown:
        print(f"oar-celery: warning: unknown setting(s) ignored: {', '.join(unknown)}", file=sys.stderr, flush=True)
    return loaded


def current_user() -> str:
    """The user running this command, from the operating system."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        import getpass  # a uid without a passwd entry: rare, not paid by every command

        return getpass.getuser()
