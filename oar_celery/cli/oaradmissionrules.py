"""oaradmissionrules: list, enable, disable and add the admission rules (an admin command of the head node).

As OAR's ``oaradmissionrules``, it works on the database directly, with the
head's settings (``OAR_ADMISSION_RULES`` names the admin's modules, which it
imports to list them). Only the OAR admin (``OAR_ADMIN_USER``, root) may
change a rule. ``oar-celery admission ...`` is the same command.
"""

from __future__ import annotations

import sys

from oar_celery.cli.common import EXIT_FAILURE, Parser, emit, error_line, parser, run

COMMAND = "oaradmissionrules"


def build_parser() -> Parser:
    p = parser(COMMAND, "List, enable, disable or add admission rules.")
    group = p.add_mutually_exclusive_group()
    group.add_argument("-S", "--show", action="store_true", help="list every rule (the default)")
    group.add_argument("-e", "--enable", metavar="NAME", help="enable the rule NAME")
    group.add_argument("-d", "--disable", metavar="NAME", help="disable the rule NAME")
    group.add_argument("-n", "--new", metavar="JSON", help="add a declarative rule (JSON, see the docs)")
    return p


def rule_lines(rules: list[dict[str, object]]) -> list[str]:
    """One line per rule: priority, state, name, origin, what it does."""
    width = max((len(str(rule["name"])) for rule in rules), default=4)
    return [
        f"{rule['priority']:>5} {'on ' if rule['enabled'] else 'off'} {str(rule['name']):<{width}}  "
        f"[{rule['origin']}] {rule['description']}"
        for rule in rules
    ]


def _body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from oar_celery.config import current_user, settings
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib import rulebook
    from oar_celery.scheduler.errors import RequestError

    config = settings()
    changing = args.enable or args.disable or args.new
    if changing and not config.is_admin(current_user()):
        error_line(COMMAND, f"only the OAR administrator ({config.admin_user} or root) can change admission rules")
        return EXIT_FAILURE
    try:
        with session_scope() as session:
            if args.new:
                print(f"added rule {rulebook.add_declarative(session, args.new)}")
            elif args.enable or args.disable:
                rule = rulebook.set_enabled(session, config, args.enable or args.disable, bool(args.enable))
                print(f"rule {rule.name} {'enabled' if args.enable else 'disabled'}")
            else:
                emit("\n".join(rule_lines(rulebook.describe(session, config))))
    except RequestError as exc:
        error_line(COMMAND, exc)
        return EXIT_FAILURE
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
