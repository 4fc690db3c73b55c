"""``python -m oar_celery.celery_main worker|beat ...``: Celery's own worker and beat commands, alone.

``python -m celery`` builds Celery's whole command line before it runs one
command of it: every subcommand, ``celery amqp``'s shell (prompt_toolkit and
Pygments, through click-repl) and every installed plugin's command (Flower's,
with Tornado and its web application): some 14 MB in a process that never
runs any of them, counted in each of the head worker's processes (its pool
children are forked from it), in beat and in every node worker. This entry
point runs the same click commands, ``celery.bin.worker.worker`` and
``celery.bin.beat.beat``, with the same options, on the project's
application (``-A`` is not needed, and refused); Flower keeps
``python -m celery ... flower``, which is its own command.
"""

from __future__ import annotations

import sys

import click
from celery.bin.base import CLIContext
from celery.bin.beat import beat
from celery.bin.worker import worker


@click.group(name="celery")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Celery's worker and beat, on the application of :mod:`oar_celery.celery_app`."""
    from oar_celery.celery_app import app

    ctx.obj = CLIContext(app=app, no_color=False, workdir=None, quiet=False)


main.add_command(worker)
main.add_command(beat)


if __name__ == "__main__":
    sys.exit(main(auto_envvar_prefix="CELERY"))
