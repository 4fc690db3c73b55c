"""Logging for every daemon, OAR's way: one file per process kind, OAR's level names.

OAR's levels map onto Python's logging: ``oar_debug`` is DEBUG, ``oar_warn``
WARNING, ``oar_error`` ERROR. Each process kind (head, node, beat, flower,
authd) writes its own file under the log directory. Head and nodes both log
through here, so this module knows neither.

One line per event: a process whose standard error is already a file (a
daemon's is its log file, ``oar-celery up`` sends it to ``<kind>.out``) logs
to its log file only, never to both. At ``INFO`` the log says what happened to
jobs and nodes; Celery's lines for every task received and done, and beat's for
every message it sends, only show at ``DEBUG``: they grow with the number of
nodes and say nothing an admin acts on. Files are opened in append mode, so
logrotate's ``copytruncate`` leaves every process writing at the start of the
emptied file (``docker/logrotate/oar-celery``); the file handler also reopens a
file that was moved away.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from logging.handlers import WatchedFileHandler
from pathlib import Path

from oar_celery.config import settings

logger = logging.getLogger("oar")

_FORMAT = "[%(asctime)s] [%(levelname)s] [%(processName)s %(process)d] [%(name)s] %(message)s"

#: Celery's loggers whose only INFO lines are one per task (received, succeeded): DEBUG only.
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")
#: Beat's INFO line for every message it sends (its other INFO lines, such as "Starting", stay).
PER_MESSAGE_LINE = "Scheduler: Sending due task"


def oar_debug(message: str, *args: object) -> None:
    logger.debug(message, *args)


def oar_warn(message: str, *args: object) -> None:
    logger.warning(message, *args)


def oar_error(message: str, *args: object) -> None:
    logger.error(message, *args)


def log_file(kind: str) -> Path:
    """The log file of one process kind: ``head``, ``node-<host>``, ``beat``, ``flower``."""
    return settings().logs / f"oar-{kind}.log"


def setup_logging(kind: str, *, to_stderr: bool = True) -> Path:
    """Send this process's logs to its file (and stderr if that is not a file), at the configured level."""
    path = log_file(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    level = logging.getLevelName(settings().log_level.upper())
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(h, WatchedFileHandler) and Path(h.baseFilename) == path.absolute() for h in root.handlers):
        handler = WatchedFileHandler(path)
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    if to_stderr and not stderr_is_a_file() and not _has_stderr_handler(root):
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(stream)
    quiet_per_task_lines(level)
    return path


def stderr_is_a_file() -> bool:
    """Whether standard error goes to a regular file: a daemon's log, or ``up``'s ``.out`` file."""
    try:
        return stat.S_ISREG(os.fstat(sys.stderr.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


def _has_stderr_handler(root: logging.Logger) -> bool:
    return any(type(h) is logging.StreamHandler and h.stream is sys.stderr for h in root.handlers)


def quiet_per_task_lines(level: int) -> None:
    """Celery's per-task and per-message lines only at DEBUG; their warnings and errors always.

    A logger's level, not a filter, for the per-task loggers: Celery then skips
    formatting those lines at all (it asks the logger once, at start-up).
    """
    for name in PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level <= logging.DEBUG else max(level, logging.WARNING))
    beat = logging.getLogger("celery.beat")
    for old in [f for f in beat.filters if isinstance(f, _PerMessageFilter)]:
        beat.removeFilter(old)
    beat.addFilter(_PerMessageFilter(level))


class _PerMessageFilter(logging.Filter):
    """Beat's per-message INFO line as a DEBUG line: shown only at DEBUG."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith(PER_MESSAGE_LINE):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.level <= logging.DEBUG
        return True


def redirect_everything(kind: str) -> Path:
    """OAR's redirect_everything: a daemon's stdout and stderr go to its log file."""
    path = log_file(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    return path
