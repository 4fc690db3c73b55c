"""A job's directory on its node: the launch guard and the node's only memory.

``os.mkdir`` of ``<node_dir>/<host>/jobs/<job_id>`` is atomic, so creating it is
how a node promises to launch a job at most once, even across worker restarts
and redelivered messages. Everything the node knows about a job is a file in
that directory, so that a restarted worker, a second worker on the same host
or a kill task handled by another thread can all read it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


def jobs_root(node_dir: Path, host: str) -> Path:
    """Where the job directories of ``host`` live."""
    return Path(node_dir) / host / "jobs"


def all_jobs(node_dir: Path, host: str) -> Iterator[JobDir]:
    """Every job directory of ``host``, in job id order."""
    root = jobs_root(node_dir, host)
    if not root.is_dir():
        return
    for entry in sorted(root.iterdir(), key=lambda p: (len(p.name), p.name)):
        if entry.name.isdigit() and entry.is_dir():
            yield JobDir(root, int(entry.name))


def json_line(data: Any) -> str:
    """A job file's JSON: one line, sorted keys (orjson: a launch spec encodes in a fifth of the time)."""
    options = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
    return orjson.dumps(data, option=options).decode()


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (one ``write`` for a small file)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class JobDir:
    """The files recorded for one job: ``spec.json``, ``pid``, ``status.json``, ..."""

    def __init__(self, root: Path | str, job_id: int) -> None:
        self.job_id = int(job_id)
        self._dir = os.path.join(root, str(self.job_id))  # files are named with strings: pathlib cost more

    @functools.cached_property
    def path(self) -> Path:
        return Path(self._dir)

    @classmethod
    def of(cls, node_dir: Path, host: str, job_id: int) -> JobDir:
        return cls(jobs_root(node_dir, host), job_id)

    def create(self) -> bool:
        """Claim the job for this node; False if it was already claimed."""
        try:
            os.mkdir(self._dir, 0o755)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self.create()
        except FileExistsError:
            return False
        return True

    def exists(self) -> bool:
        return os.path.isdir(self._dir)

    # Files are written to a temporary name then renamed, so a reader never
    # sees half a file, even if the worker dies mid-write.
    def write(self, name: str, text: str, mode: int = 0o644, *, durable: bool = True) -> None:
        """Replace the file atomically; ``durable`` also syncs it to disk first.

        Only what must survive a crash of the machine needs the sync (the final
        status, kill and suspension records): the launch-time files (owner,
        spec, nodefile, pid) describe processes that such a crash kills too,
        and five syncs per job made a short job's launch disk-bound.
        """
        temporary = os.path.join(self._dir, f".{name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            write_all(fd, text.encode())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, os.path.join(self._dir, name))

    def write_new(self, name: str, text: str, mode: int = 0o644) -> None:
        """A file the launch writes once, before the job's keeper exists: its content in one ``write``.

        The directory was just claimed by this process, so the name is new:
        no temporary name and no ``rename``, two system calls fewer for each
        of a short job's half-dozen launch files. A reader racing the launch
        finds no file, or an empty one, which every reader takes for no file
        (a job that has not started); a worker dying meanwhile leaves no
        keeper to adopt. A name that exists after all is replaced atomically.
        """
        path = os.path.join(self._dir, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except FileExistsError:
            self.write(name, text, mode, durable=False)
            return
        try:
            write_all(fd, text.encode())
        finally:
            os.close(fd)

    def read(self, name: str) -> str | None:
        try:
            with open(os.path.join(self._dir, name), "rb") as handle:
                return handle.read().decode()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write_json(self, name: str, data: Any, mode: int = 0o644, *, durable: bool = True) -> None:
        """One line of JSON, sorted keys (the C encoder: an indented file took the slow one)."""
        self.write(name, json_line(data), mode, durable=durable)

    def read_json(self, name: str) -> Any:
        text = self.read(name)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None

    @property
    def nodefile(self) -> Path:
        return Path(os.path.join(self._dir, "nodefile"))

    @property
    def launch_errors(self) -> Path:
        """What the launch wrapper said before the job's own shell took over."""
        return Path(os.path.join(self._dir, "launch.err"))

    @property
    def spec(self) -> dict[str, Any] | None:
        return self.read_json("spec.json")

    @property
    def exit_file(self) -> Path:
        """Where the job's keeper writes the job's exit status (``process.py``)."""
        return Path(os.path.join(self._dir, "exit"))

    @property
    def pid(self) -> int | None:
        """The job's process group id (its keeper's pid), once it has started."""
        keeper = self.keeper
        return keeper[0] if keeper else None

    @property
    def keeper(self) -> tuple[int, int | None, float] | None:
        """The keeper's pid, its kernel start time and when the job started (epoch seconds).

        One file, ``pid``, written once the job runs: ``<pid> <start time> <started at>``.
        """
        fields = (self.read("pid") or "").split()
        if not fields or not fields[0].isdigit():
            return None
        start = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
        started_at = float(fields[2]) if len(fields) > 2 else time.time()
        return int(fields[0]), start, started_at

    def record_keeper(self, pid: int, start: int | None, started_at: float) -> None:
        self.write("pid", f"{pid} {start if start is not None else '-'} {started_at!r}\n", durable=False)

    @property
    def cgroup_text(self) -> str | None:
        """The job's cgroup directories (``cgroup.JobCgroup.to_text``), if it has a cgroup."""
        return self.read("cgroup")

    @property
    def status(self) -> dict[str, Any] | None:
        """The final status, once the job has ended on this node."""
        return self.read_json("status.json")

    @property
    def owner(self) -> int | None:
        """The pid of the worker process whose supervisor watches the job."""
        text = self.read("owner")
        return int(text) if text and text.strip().isdigit() else None

    def request_kill(self, grace: float, signalled: bool) -> None:
        """Record a kill request: the supervisor escalates to SIGKILL after ``grace``.

        ``signalled`` says whether the group already got its SIGTERM; if not
        (the job had not started yet), the supervisor sends it.
        """
        if self.read_json("kill.json") is None:
            self.write_json("kill.json", {"time": time.time(), "grace": float(grace), "signalled": signalled})

    @property
    def kill_request(self) -> dict[str, float] | None:
        return self.read_json("kill.json")

    def set_walltime(self, walltime: int) -> None:
        """The walltime the head granted since the launch (``oarwalltime``); the backstop follows it."""
        self.write("walltime", str(int(walltime)), durable=False)

    @property
    def walltime(self) -> int | None:
        text = self.read("walltime")
        return int(text) if text and text.strip().isdigit() else None

    def mark_suspended(self) -> None:
        if self.read("suspended") is None:
            self.write("suspended", repr(time.time()))

    def mark_resumed(self) -> None:
        since = self.read("suspended")
        if since is None:
            return
        total = self.suspended_seconds()
        self.write("suspended_total", repr(total))
        with contextlib.suppress(FileNotFoundError):
            (self.path / "suspended").unlink()

    def suspended_seconds(self) -> float:
        """How long the job has been stopped, which pushes its walltime back."""
        total = float(self.read("suspended_total") or 0.0)
        since = self.read("suspended")
        if since is not None:
            total += max(0.0, time.time() - float(since))
        return total
