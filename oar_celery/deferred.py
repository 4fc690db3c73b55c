"""Head task bodies loaded by the pool processes that run them, not by the worker's main process.

The head worker's main process (``celery worker --pool prefork``) receives
the messages and hands them to its pool: it needs every task registered by
name, never the code a task runs. Importing the head's modules there (the
database layer, the store, the scheduler, every OAR module: some 25 MB) put
that memory in each process of the worker, since its pool children, forked
from it, hold the same pages, and the sum of their resident sets is what
an admin's ``top`` adds up. So a head task module registers a
:func:`deferred` body, which names its function; each pool process imports
every named module and looks every named function up once it is forked
(:func:`load`, on ``worker_process_init``), before its first task, as it did
when the main process imported them before forking: a name that does not
exist fails there, not at the first request.

A task called in the process that defines it (a test, a script) imports
its module at its first call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from celery import signals

#: The modules the deferred bodies live in, and those :func:`preload` names, in the order they were named.
MODULES: list[str] = []
#: Each deferred body's module, function name and, once looked up, the function.
_BODIES: list[tuple[str, str, list[Callable[..., Any]]]] = []


def preload(*modules: str) -> None:
    """Have each pool process import these modules once it is forked (:func:`load`)."""
    MODULES.extend(module for module in modules if module not in MODULES)


def deferred(module: str, name: str) -> Callable[..., Any]:
    """A task body that runs ``module.name``, the module imported at the first call (or by :func:`load`)."""
    preload(module)
    target: list[Callable[..., Any]] = []
    _BODIES.append((module, name, target))

    def run(*args: Any, **kwargs: Any) -> Any:
        if not target:
            _resolve(module, name, target)
        return target[0](*args, **kwargs)

    run.__name__ = run.__qualname__ = name
    run.__module__ = module
    run.__doc__ = f"``{module}.{name}``, imported where it runs."
    return run


def _resolve(module: str, name: str, target: list[Callable[..., Any]]) -> None:
    if not target:
        target.append(getattr(importlib.import_module(module), name))


def load() -> None:
    """Import every module named here and look every deferred body's function up (a pool process, once forked)."""
    for module in MODULES:
        importlib.import_module(module)
    for module, name, target in _BODIES:
        _resolve(module, name, target)


@signals.worker_process_init.connect
def _load_in_pool_process(**_: object) -> None:
    load()
