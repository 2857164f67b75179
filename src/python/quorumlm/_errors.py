"""The exceptions of quorumlm, and the holders a denial lists.

They are plain Python classes so that a program (or its tests) can make and raise them
without a server; the extension module raises them by name.
"""

from typing import List, NamedTuple, Optional, Sequence


class Holder(NamedTuple):
    """One checkout that holds seats of a denied feature."""

    user: str
    host: str
    count: int
    display: str = ""
    #: When it was granted, in milliseconds since 1970.
    since_unix_ms: int = 0
    #: The checkout's handle on the cluster.
    handle: int = 0


class Error(Exception):
    """Every error quorumlm raises."""


class Denied(Error):
    """The license server refused the checkout.

    ``reason`` is the server's reason without its prefix: ``"ALL_IN_USE"``,
    ``"NO_SUCH_FEATURE"``, ``"VERSION_TOO_HIGH"``, ``"EXPIRED"``, ``"NOT_STARTED"``,
    ``"EXCLUDED"``, ``"RESERVED_FOR_OTHERS"``, ...; ``holders`` lists who holds the seats
    (for ``ALL_IN_USE``).
    """

    def __init__(self, reason: str, message: str, holders: Optional[Sequence[Holder]] = None):
        super().__init__(reason, message, list(holders or []))
        self.reason = reason
        self.message = message
        self.holders: List[Holder] = list(holders or [])

    def __str__(self) -> str:
        return f"denied ({self.reason}): {self.message}"


class Unreachable(Error):
    """No license server answered; ``tried`` lists the servers tried."""

    def __init__(self, message: str, tried: Optional[Sequence[str]] = None):
        super().__init__(message)
        self.message = message
        self.tried: List[str] = list(tried or [])

    def __str__(self) -> str:
        return self.message


class WaitTimeout(Error):
    """A checkout with ``wait=seconds`` was still queued when the time ran out.

    Not a ``Denied``: nobody refused the request, the queue was too slow; the request is
    taken out of the queue. Catch ``(Denied, WaitTimeout)`` to treat both as "no seat".
    """


class NodeLockedRefused(Error):
    """No entry of the search path granted, and only node-locked license lines could have.

    The message names every refused line: its file, line number, feature and why (bound to
    another machine, a bad signature, expired, a vendor key not trusted, ...).
    """


class SessionLost(Error):
    """The client's session was lost: the cluster expired it (or an admin ended it), or no
    server answered for longer than its TTL. The seats it held may have gone to others.

    Raised once, by the first checkout after the loss; the client then drops that session and
    the next checkout opens a new one. ``reason`` is ``"expired"`` or ``"unreachable"``
    (``None`` when not known).
    """

    def __init__(self, message: str, reason: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class InvalidArgument(Error, ValueError):
    """An argument was refused before anything was sent (the message names it)."""


class NoServers(Error):
    """No license server or search path was given (the environment variables are unset)."""
