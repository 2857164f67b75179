"""QuorumLM's client for Python.

    import quorumlm

    client = quorumlm.Client.from_env()          # QLM_LICENSE, then QLM_SERVERS
    with client.checkout("vhdl-editor", version="4.0") as seat:
        ...                                      # the licensed work
    client.close()

A checkout that is refused raises ``Denied`` (with the server's ``reason``, ``message`` and
``holders``); when no server answers, ``Unreachable``; a queued wait (``wait=seconds``) that
runs out, ``WaitTimeout``. All of them are ``quorumlm.Error``.
"""

from ._errors import (
    Denied,
    Error,
    Holder,
    InvalidArgument,
    NoServers,
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
    "NoServers",
    "Seat",
    "Unreachable",
    "WaitTimeout",
    "__version__",
]
