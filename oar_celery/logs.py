"""Logging for every daemon, OAR's way: one file per process kind, OAR's level names.

OAR's levels map onto Python's logging: ``oar_debug`` is DEBUG, ``oar_warn``
WARNING, ``oar_error`` ERROR. Each process kind (head, node, beat, flower,
authd) writes its own file under the log directory. Head and nodes both log
through here, so this module knows neither.
"""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import WatchedFileHandler
from pathlib import Path

from oar_celery.config import settings

logger = logging.getLogger("oar")

_FORMAT = "[%(asctime)s] [%(levelname)s] [%(processName)s %(process)d] [%(name)s] %(message)s"


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
    """Send this process's logs to its file (and stderr), at the configured level."""
    path = log_file(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(settings().log_level.upper())
    handler = WatchedFileHandler(path)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    if to_stderr and not any(isinstance(h, logging.StreamHandler) and h.stream is sys.stderr for h in root.handlers):
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(stream)
    return path


def redirect_everything(kind: str) -> Path:
    """OAR's redirect_everything: a daemon's stdout and stderr go to its log file."""
    path = log_file(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    return path
