"""Head task bodies loaded by the pool processes that run them, not by the worker's main process.

The head worker's main process (``celery worker --pool prefork``) receives
the messages and hands them to its pool: it needs every task registered by
name, never the code a task runs. Importing the head's modules there (the
database layer, the store, the scheduler, every OAR module: some 40 MB) put
that memory in each process of the worker, since its pool children, forked
from it, hold the same pages, and the sum of their resident sets is what
an admin's ``top`` adds up. So a head task module registers a
:func:`deferred` body, which names its function; each pool process imports
every named module once it is forked (:func:`load`, on
``worker_process_init``), before its first task, as it did when the main
process imported them before forking.

A task called in the process that defines it (a test, a script) imports
its module at its first call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from celery import signals

#: The modules the deferred bodies live in, in the order they were named.
MODULES: list[str] = []


def preload(*modules: str) -> None:
    """Have each pool process import these modules once it is forked (:func:`load`)."""
    MODULES.extend(module for module in modules if module not in MODULES)


def deferred(module: str, name: str) -> Callable[..., Any]:
    """A task body that runs ``module.name``, the module imported at the first call (or by :func:`load`)."""
    preload(module)
    target: list[Callable[..., Any]] = []

    def run(*args: Any, **kwargs: Any) -> Any:
        if not target:
            target.append(getattr(importlib.import_module(module), name))
        return target[0](*args, **kwargs)

    run.__name__ = run.__qualname__ = name
    run.__module__ = module
    run.__doc__ = f"``{module}.{name}``, imported where it runs."
    return run


def load() -> None:
    """Import every module a deferred body names (a pool process, before its first task)."""
    for module in MODULES:
        importlib.import_module(module)


@signals.worker_process_init.connect
def _load_in_pool_process(**_: object) -> None:
    load()
