"""Write a manual page for every command, from its argparse definition: ``make man``.

The pages land in ``docs/man/`` and are installed with the package into
``share/man/man1`` (``man oarsub`` finds them next to the commands' ``bin``).
A test regenerates them and fails if one differs, so they never lag the options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import version
from pathlib import Path

from argparse_manpage.manpage import Manpage

from oar_celery.cli.common import COMMANDS as CLI_COMMANDS

#: Every command, and the module whose ``build_parser`` defines its options.
COMMANDS = {name: f"oar_celery.cli.{'admin' if name == 'oar-celery' else name}" for name in CLI_COMMANDS}
OUT = Path(__file__).resolve().parents[1] / "docs" / "man"
SEE_ALSO = ", ".join(rf"\fB{name}\fR(1)" for name in COMMANDS)


def manpage(command: str) -> str:
    """The roff text of one command's page."""
    parser: argparse.ArgumentParser = importlib.import_module(COMMANDS[command]).build_parser()
    parser.prog = command
    page = Manpage(parser)
    page.description = (parser.description or "").rstrip(".")
    page.date = version("oar-celery")
    page.source = "oar-celery"
    page.manual = "oar-celery manual"
    text = str(page)
    others = SEE_ALSO.replace(rf"\fB{command}\fR(1), ", "").replace(rf", \fB{command}\fR(1)", "")
    return text + (
        ".SH ENVIRONMENT\n"
        r"Settings are \fBOAR_*\fR variables or NAME=\(dqvalue\(dq lines of \fB/etc/oar/oar.conf\fR; "
        r"\fBoar\-celery config\fR prints the effective ones." "\n"
        f".SH SEE ALSO\n{others}\n"
    )


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    for command in COMMANDS:
        (out / f"{command}.1").write_text(manpage(command))
    print(f"{len(COMMANDS)} manual pages in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
