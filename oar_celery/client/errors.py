"""The one error the client raises: a single line a command prints as is."""

from __future__ import annotations

import re

_REDIS_REASON = re.compile(r"Error (?:-?\d+ )?(?:connecting|while reading) (?:to|from) \S+?\.? (.+?)\.?$")


class ClientError(Exception):
    """A request the client cannot carry out (service down, refusal, timeout)."""

    def __init__(self, message: str) -> None:
        # Users see this line after "<command>: error:"; never let a newline through.
        super().__init__(" ".join(str(message).split()))


class NotDelivered(ClientError):
    """The head may not have got or answered the request."""


class BrokerUnreachable(NotDelivered):
    """The broker could not be reached: the request most likely never left."""


class NeverSent(BrokerUnreachable):
    """The broker refused the connection before the request was pushed: the head cannot have it."""


class NoAnswer(NotDelivered):
    """The request left but no answer came in time: the head may be down, or may have acted."""


def reason(exc: BaseException) -> str:
    """The short cause of a connection failure, such as ``Connection refused``.

    Drivers wrap the socket error in several layers; the innermost
    :class:`OSError` with a ``strerror`` says it best.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        current = current.__cause__ or current.__context__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    match = _REDIS_REASON.search(text)
    return match.group(1) if match else text
