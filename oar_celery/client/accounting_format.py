"""``oarstat --accounting``'s two layouts, as OAR3 prints them: the users' table, and one user's summary."""

from __future__ import annotations

from collections.abc import Mapping

from oar_celery.client.oar3_format import date_text
from oar_celery.scheduler.walltime import format_walltime


def accounting_table(summary: Mapping[tuple[str, str], Mapping[str, int]]) -> str:
    """``oarstat --accounting``: one line per user, OAR3's columns."""
    headers = ["User", "First window starts", "Last window ends", "Asked (seconds)", "Used (seconds)"]
    lines = [
        [user, date_text(entry["begin"]), date_text(entry["end"]), str(entry["ASKED"]), str(entry["USED"])]
        for (user, _), entry in sorted(summary.items(), key=lambda item: item[1]["USED"])
    ]
    widths = [max(len(row[i]) for row in [headers, *lines]) for i in range(len(headers))]
    rows = [headers, ["-" * width for width in widths], *lines]
    return "\n".join(" ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def accounting_user(user: str, first: str, second: str, entry: Mapping[str, int] | None,
                    projects: Mapping[tuple[str, str], Mapping[str, int]],
                    karmas: Mapping[str, float] | None = None) -> str:
    """``oarstat -u USER --accounting``: OAR3's usage summary of one user, then by project."""
    def consumption(label: str, seconds: int) -> str:
        return f"{label:>28}: {seconds:>10} ({format_walltime(seconds):>10})"

    asked, used = (entry or {}).get("ASKED", 0), (entry or {}).get("USED", 0)
    lines = [
        f"Usage summary for user {user} from {first} to {second}:",
        "-------------------------------------------------------------",
        f"{'Start of the first window':>28}: {date_text(entry['begin']) if entry else 'No window found'}",
        f"{'End of the last window':>28}: {date_text(entry['end']) if entry else 'No window found'}",
        consumption("Asked consumption", asked),
        consumption("Used consumption", used),
        "By project consumption:",
    ]
    for (_, project), values in sorted(projects.items()):
        lines += [f"  {project}:", consumption("Asked consumption", values["ASKED"]),
                  consumption("Used consumption", values["USED"])]
        if karmas and project in karmas:
            lines.append(f"{'Last Karma':>28}: {karmas[project]:.3f}")
    return "\n".join(lines)
