"""The one error the scheduling package raises on bad user input.

Requests come from users (``oarsub -l``, ``-p``); a refusal must reach them as
a single readable line, so every parse or validation failure is a
:class:`RequestError` whose message has no newline and no traceback text.
"""

from __future__ import annotations


class RequestError(ValueError):
    """A resource request, walltime or property filter that cannot be accepted."""

    def __init__(self, message: str) -> None:
        # Keep the message on one line whatever the caller passed in.
        super().__init__(" ".join(str(message).split()))
