"""QuorumLM's client for Python.

    import quorumlm

    client = quorumlm.Client.from_env()          # QLM_LICENSE, then QLM_SERVERS
    client.trust_vendor_key(VENDOR_PUBLIC_KEY)   # for node-locked license files
    with client.checkout("vhdl-editor", version="4.0") as seat:
        ...                                      # the licensed work
    client.close()

A checkout that is refused raises ``Denied`` (with the server's ``reason``, ``message`` and
``holders``); when no server answers, ``Unreachable``; a queued wait (``wait=seconds``) that
runs out, ``WaitTimeout``; when only node-locked lines could have granted and each was
refused, ``NodeLockedRefused``; the first checkout after the session was lost,
``SessionLost`` (the next one opens a new session). All of them are ``quorumlm.Error``.
"""

from ._errors import (
    Denied,
    Error,
    Holder,
    InvalidArgument,
    NodeLockedRefused,
    NoServers,
    SessionLost,
    Unreachable,
    WaitTimeout,
)
from ._native import Client, Seat, __version__

__all__ = [
    "Client",
    "Denied",
    "Error",
    "Holder",
    "InvalidArgument",
    "NodeLockedRefused",
    "NoServers",
    "Seat",
    "SessionLost",
    "Unreachable",
    "WaitTimeout",
    "__version__",
]
