"""Each job in a cgroup of its own: its CPUs, its memory, its freezer, its cleanup.

OAR's ``job_resource_manager_cgroups`` gives every job a cpuset holding
exactly the CPUs of its resources, so a ``core=1`` job sees one CPU and two
jobs on one node never share a core; the same cgroup is how the node finds
every process the job started, even one that left the job's session
(``setsid sleep 1000 &``), to suspend it with the freezer and to kill it at
the end. A process cannot leave its cgroup by itself; it can leave a
process group.

Two kinds of hierarchy exist and one small interface hides them
(:class:`JobCgroup`): cgroup v2 when ``<root>`` is the unified hierarchy
(``cgroup.controllers`` at its top), else cgroup v1 with one directory per
controller (``<root>/cpuset``, ``<root>/memory``, ``<root>/freezer``). A v1
job cgroup nests under the worker's own cgroup of each controller, so that
the jobs stay within whatever limits the node's manager gave the worker.
Where neither is writable, :func:`hierarchy` returns None and the node
confines jobs with CPU affinity only (``supervisor.py``).

The directories of a job's cgroup are written to its job directory
(:meth:`JobCgroup.to_text`), so that a restarted worker finds them again
even if it runs in another cgroup than its predecessor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: The v1 controllers a job gets a directory in; only cpuset is required.
V1_CONTROLLERS = ("cpuset", "memory", "freezer")
#: How long freezing, or emptying a cgroup of its killed processes, may take.
SETTLE_TIMEOUT = 5.0


def _write(path: str, text: str) -> None:
    """One ``write`` of the whole value: cgroup files act on each write."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read().decode().strip()


def cpu_list(cpus: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` → ``0-2,5``, the kernel's list format."""
    ranges: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _safe(name: str) -> str:
    """A host name as one path component."""
    return name.replace("/", "_").replace("..", "_") or "_"


@dataclass(frozen=True)
class JobCgroup:
    """The directories of one job's cgroup: one (v2) or one per v1 controller.

    ``procs`` is the directory whose ``cgroup.procs`` lists the job's
    processes (every directory lists the same ones: a forked process
    inherits all of its parent's cgroups).
    """

    version: int
    directories: tuple[str, ...]

    # -- persistence -------------------------------------------------------------------------
    def to_text(self) -> str:
        return "\n".join([f"v{self.version}", *self.directories]) + "\n"

    @classmethod
    def from_text(cls, text: str | None) -> JobCgroup | None:
        lines = (text or "").split()
        if not lines or lines[0] not in ("v1", "v2"):
            return None
        return cls(int(lines[0][1]), tuple(lines[1:]))

    # -- membership --------------------------------------------------------------------------
    def _controller(self, name: str) -> str | None:
        """The v1 directory of controller ``name`` (v2: the one directory)."""
        if self.version == 2:
            return self.directories[0]
        return next((d for d in self.directories if f"/{name}/" in d), None)

    def add(self, pid: int) -> None:
        """Move ``pid`` into the job's cgroup, in every hierarchy."""
        for directory in self.directories:
            _write(f"{directory}/cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        """Every process now in the cgroup ([] once it is gone)."""
        try:
            text = _read(f"{self.directories[0]}/cgroup.procs")
        except (FileNotFoundError, OSError):
            return []
        return [int(pid) for pid in text.split()]

    def exists(self) -> bool:
        return os.path.isdir(self.directories[0])

    # -- freezer -----------------------------------------------------------------------------
    @property
    def can_freeze(self) -> bool:
        if self.version == 2:
            return os.path.exists(f"{self.directories[0]}/cgroup.freeze")
        return self._controller("freezer") is not None

    def freeze(self) -> bool:
        """Stop every process of the job at once, where a signal would reach them one by one."""
        return self._set_frozen(True)

    def thaw(self) -> bool:
        return self._set_frozen(False)

    def frozen(self) -> bool:
        """Whether the job is (being) frozen."""
        try:
            if self.version == 2:
                return _read(f"{self.directories[0]}/cgroup.freeze") == "1"
            freezer = self._controller("freezer")
            return freezer is not None and _read(f"{freezer}/freezer.state") != "THAWED"
        except OSError:
            return False

    def _set_frozen(self, frozen: bool) -> bool:
        """Write the freezer's state, then wait until the kernel says it is reached."""
        if not self.can_freeze:
            return False
        try:
            if self.version == 2:
                _write(f"{self.directories[0]}/cgroup.freeze", "1" if frozen else "0")
                self._wait(lambda: _v2_frozen(self.directories[0]) == frozen)
            else:
                freezer = self._controller("freezer")
                wanted = "FROZEN" if frozen else "THAWED"
                _write(f"{freezer}/freezer.state", wanted)
                self._wait(lambda: _read(f"{freezer}/freezer.state") == wanted)
        except OSError:
            return False
        return True

    @staticmethod
    def _wait(condition: object, timeout: float = SETTLE_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return True

    # -- signals and cleanup -----------------------------------------------------------------
    def signal(self, signum: int, spare: int | None = None) -> int:
        """Send ``signum`` to every process of the job but ``spare``; how many got it."""
        sent = 0
        for pid in self.pids():
            if pid != spare:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)
                    sent += 1
        return sent

    def kill_all(self, spare: int | None = None) -> None:
        """Freeze, SIGKILL every process but ``spare``, thaw: none can fork past the kill."""
        frozen = self.freeze()
        self.signal(signal.SIGKILL, spare)
        if frozen:
            self.thaw()

    def remove(self) -> bool:
        """Remove the cgroup, killing what is left in it first; False if it would not empty.

        Most jobs leave nothing behind, so the removal is tried first: it
        fails (busy) only if processes remain.
        """
        if self._rmdir_all():
            return True
        if self.version == 2 and os.path.exists(f"{self.directories[0]}/cgroup.kill"):
            with contextlib.suppress(OSError):
                _write(f"{self.directories[0]}/cgroup.kill", "1")
        empty = self._wait(lambda: not self._kill_round())
        for directory in self.directories:
            with contextlib.suppress(FileNotFoundError):
                _rmdir_when_empty(directory)
        return empty and not self.exists()

    def _rmdir_all(self) -> bool:
        """rmdir of every directory at once; False if one is still busy."""
        for directory in self.directories:
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return True

    def _kill_round(self) -> bool:
        """One freeze-kill-thaw round; whether processes were still there."""
        if not self.pids():
            return False
        self.kill_all()
        return bool(self.pids())


def _v2_frozen(directory: str) -> bool:
    for line in _read(f"{directory}/cgroup.events").splitlines():
        key, _, value = line.partition(" ")
        if key == "frozen":
            return value == "1"
    return False


def _rmdir_when_empty(directory: str) -> None:
    """rmdir, retried briefly: the kernel lets a cgroup go a moment after its last process."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            os.rmdir(directory)
            return
        except OSError as error:
            if isinstance(error, FileNotFoundError) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Hierarchy:
    """Where this node creates job cgroups, and how."""

    version = 0

    def __init__(self, bases: tuple[str, ...]) -> None:
        self.bases = bases  # the ``oar`` directory of each hierarchy
        self._made: set[str] = set()  # host directories known to exist

    def host_dir(self, base: str, host: str, *, cpuset: bool) -> str:
        """``<base>/<host>``, made once per process."""
        path = f"{base}/{_safe(host)}"
        if path not in self._made or not os.path.isdir(path):
            _make_dir(path, cpuset=cpuset)
            self._made.add(path)
            self.host_made(path, cpuset=cpuset)
        return path

    def host_made(self, path: str, *, cpuset: bool) -> None:
        """What a hierarchy sets on a host directory it (re)finds: nothing by default."""

    def create(self, host: str, job_id: int, cpus: list[int], memory: int | None) -> JobCgroup:
        raise NotImplementedError

    def sweep(self, host: str, running: Callable[[int], bool]) -> int:
        """Remove the empty cgroups of the jobs of ``host`` that are not ``running``; how many went.

        A worker that died between making a job's cgroup and recording it
        leaves an empty directory. Each directory is listed before its job
        is checked (a job claims its directory before it makes its cgroup),
        and only rmdir is tried, which a cgroup with processes refuses.
        """
        removed = 0
        for base in self.bases:
            with contextlib.suppress(OSError):
                stale = [e.path for e in os.scandir(f"{base}/{_safe(host)}") if e.name.isdigit() and e.is_dir()]
                for path in stale:
                    if not running(int(os.path.basename(path))):
                        with contextlib.suppress(OSError):
                            os.rmdir(path)
                            removed += 1
        return removed

    def describe(self) -> str:
        return f"cgroup v{self.version} under {', '.join(self.bases)}"


class V1(Hierarchy):
    """cgroup v1: one hierarchy per controller, each job a directory in cpuset and freezer (and memory for a limit).

    A host's cpuset directory has ``cgroup.clone_children`` set, so that a
    job's cpuset is born with the host's CPUs and memory nodes and only its
    own CPUs are written: one write per job instead of a read and two writes.
    What each hierarchy is (cpuset, memory, other) is looked up once.
    """

    version = 1

    def __init__(self, bases: tuple[str, ...]) -> None:
        super().__init__(bases)
        self.kinds = {base: "memory" if _is_memory(base) else "cpuset" if _is_cpuset(base) else "" for base in bases}
        self._cloning: set[str] = set()  # host cpuset directories whose children inherit CPUs and memory nodes

    def host_made(self, path: str, *, cpuset: bool) -> None:
        """A host's cpuset directory: its children are born with its CPUs and memory nodes."""
        if not cpuset:
            return
        try:
            _write(f"{path}/cgroup.clone_children", "1")
            self._cloning.add(path)
        except OSError:
            self._cloning.discard(path)

    def create(self, host: str, job_id: int, cpus: list[int], memory: int | None) -> JobCgroup:
        """``<controller>/…/oar/<host>/<job id>`` in every hierarchy, its CPUs and memory set."""
        directories = []
        for base in self.bases:
            kind = self.kinds[base]
            if kind == "memory" and not memory:
                continue  # a memory cgroup costs the kernel more than the others: only for a limit
            host_dir = self.host_dir(base, host, cpuset=kind == "cpuset")
            job_dir = _make_dir(f"{host_dir}/{int(job_id)}", cpuset=False)
            directories.append(job_dir)
            if kind == "cpuset":
                if host_dir not in self._cloning:
                    _write(f"{job_dir}/cpuset.mems", _read(f"{host_dir}/cpuset.mems"))
                _write(f"{job_dir}/cpuset.cpus", cpu_list(cpus))
            elif kind == "memory":
                _write(f"{job_dir}/memory.limit_in_bytes", str(memory))
        return JobCgroup(1, tuple(directories))


class V2(Hierarchy):
    """cgroup v2: one tree, ``<root>/oar/<host>/<job id>``, cpuset and memory enabled down to it."""

    version = 2

    def create(self, host: str, job_id: int, cpus: list[int], memory: int | None) -> JobCgroup:
        base = self.bases[0]
        fresh = f"{base}/{_safe(host)}" not in self._made
        host_dir = self.host_dir(base, host, cpuset=False)
        if fresh:
            _enable_controllers(host_dir)
        job_dir = _make_dir(f"{host_dir}/{int(job_id)}", cpuset=False)
        _write(f"{job_dir}/cpuset.cpus", cpu_list(cpus))
        if memory:
            _write(f"{job_dir}/memory.max", str(memory))
        return JobCgroup(2, (job_dir,))


def _is_memory(base: str) -> bool:
    return os.path.exists(f"{base}/memory.limit_in_bytes")


def _is_cpuset(base: str) -> bool:
    return os.path.exists(f"{base}/cpuset.cpus") and "/cpuset/" in f"{base}/"


def _make_dir(path: str, *, cpuset: bool) -> str:
    """mkdir -p of one level; a new v1 cpuset level gets its parent's CPUs and memory nodes.

    A v1 cpuset created empty refuses processes, and a child's CPUs must be
    within its parent's, so each level is filled before the next is made.
    A job directory left by a crash is emptied and made again.
    """
    try:
        os.mkdir(path)
    except FileExistsError:
        if not cpuset:  # a job's own directory: what a previous life left
            stale = JobCgroup(1, (path,))
            if stale.pids():
                stale.kill_all()
            return path
        return path
    if cpuset:
        parent = os.path.dirname(path)
        for name in ("cpuset.cpus", "cpuset.mems"):
            _write(f"{path}/{name}", _read(f"{parent}/{name}"))
    return path


def _enable_controllers(*levels: str) -> None:
    """v2: let the children of each level have the cpuset and memory controllers (those it has)."""
    for level in levels:
        available = set(_read(f"{level}/cgroup.controllers").split())
        wanted = " ".join(f"+{c}" for c in ("cpuset", "memory") if c in available)
        if wanted:
            _write(f"{level}/cgroup.subtree_control", wanted)


def _own_path(controller: str) -> str:
    """This process's cgroup in the v1 hierarchy of ``controller`` ('/' if not listed)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return path
    return "/"


def find_hierarchy(root: str, name: str = "oar") -> Hierarchy | None:
    """The node's writable hierarchy under ``root``, its ``name`` directories made; None if none."""
    try:
        if os.path.exists(f"{root}/cgroup.controllers"):
            _enable_controllers(root)
            base = _make_dir(f"{root}/{name}", cpuset=False)
            _enable_controllers(base)
            return V2((base,))
        if not os.path.exists(f"{root}/cpuset/cpuset.cpus"):
            return None
        bases = []
        for controller in V1_CONTROLLERS:
            mount = f"{root}/{controller}"
            if not os.path.ismount(mount) and not os.path.exists(f"{mount}/cgroup.procs"):
                continue
            own = f"{mount}{_own_path(controller)}".rstrip("/")
            bases.append(_make_dir(f"{own}/{name}", cpuset=controller == "cpuset"))
        return V1(tuple(bases))
    except OSError:
        return None


_found: dict[tuple[str, str], Hierarchy | None] = {}
_found_lock = threading.Lock()


#: The kernel's list of what its cgroups support, ``favordynmods`` among them (Linux 6.0 and later).
FEATURES = "/sys/kernel/cgroup/features"
#: Where a v1 node mounts its named hierarchy with ``favordynmods``; it stays, for the next start to see.
FAVORDYNMODS_POINT = "/run/oar-favordynmods"


def favordynmods_step(root: str, features: str, mounts: str) -> list[str] | None:
    """The ``mount`` command that turns the kernel's ``favordynmods`` on for ``root``'s cgroups; None if none is needed.

    Moving a process into a cgroup takes the kernel's threadgroup lock for
    writing, which waits for an RCU grace period unless another move came
    just before: 5 to 17 ms of every job's start on an idle node, measured.
    ``favordynmods`` keeps that lock in the mode where a move is cheap and a
    fork or an exit takes a slightly slower path. On cgroup v2 it is the
    unified mount's option (a remount); cgroup v1 has no remount for it, but
    the lock is one for the whole kernel, and mounting any hierarchy with the
    option switches it for good: a named hierarchy without controllers
    (:data:`FAVORDYNMODS_POINT`).
    """
    if "favordynmods" not in features.split():
        return None
    cgroup_mounts = [line.split() for line in mounts.splitlines() if len(line.split()) >= 4]
    cgroup_mounts = [fields for fields in cgroup_mounts if fields[2] in ("cgroup", "cgroup2")]
    if any("favordynmods" in fields[3].split(",") for fields in cgroup_mounts):
        return None
    if any(fields[2] == "cgroup2" and fields[1] == root for fields in cgroup_mounts):
        return ["mount", "-o", "remount,favordynmods", root]
    return ["mount", "-t", "cgroup", "-o", "none,name=oar-favordynmods,favordynmods", "cgroup", FAVORDYNMODS_POINT]


def favor_dynamic_changes(root: str) -> None:
    """Turn ``favordynmods`` on if the kernel has it and it is off; a failure is logged, jobs run anyway."""
    try:
        step = favordynmods_step(root, _read(FEATURES), _read("/proc/mounts"))
    except OSError:
        return
    if step is None:
        return
    import subprocess

    try:
        os.makedirs(step[-1], exist_ok=True)
        subprocess.run(step, check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("cgroup favordynmods not turned on (%s): each job's start waits for the kernel", error)
        return
    logger.info("cgroup favordynmods turned on: a job's move into its cgroup no longer waits for the kernel")


def node_hierarchy(root: str, name: str = "oar", *, favordynmods: bool = False) -> Hierarchy | None:
    """:func:`find_hierarchy`, once per process: the log says once how this node confines its jobs.

    ``favordynmods``: also turn the kernel's option on (:func:`favor_dynamic_changes`), once.
    """
    with _found_lock:
        if (root, name) not in _found:
            found = _found[root, name] = find_hierarchy(root, name)
            if found is not None and favordynmods:
                favor_dynamic_changes(root)
            if found is None:
                logger.warning(
                    "no writable cgroup hierarchy under %s: jobs are confined to their CPUs by CPU affinity "
                    "only (no memory limit, suspension by signals, cleanup by process group)", root
                )
            else:
                logger.info("jobs are confined with %s", found.describe())
        return _found[root, name]
