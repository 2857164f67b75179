"""Types of the extension module quorumlm._native (re-exported by quorumlm)."""

import datetime
from types import TracebackType
from typing import Callable, Dict, Optional, Sequence, Type, Union

__version__: str

class Seat:
    """A granted checkout; a context manager that checks in on exit."""

    @property
    def handle(self) -> int: ...
    @property
    def feature(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def node_locked(self) -> bool:
        """True when a node-locked license line granted it (no server; checkin does nothing)."""
    @property
    def source(self) -> str:
        """``"cluster host:port,..."`` or ``"node-locked /path/to/file.lic line N"``."""
    @property
    def checked_in(self) -> bool: ...
    def checkin(self) -> None: ...
    def __enter__(self) -> "Seat": ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool: ...

class Client:
    """A license search path (or one cluster) and this process's session along it.

    The session opens at the first checkout. When it is lost, the next checkout raises
    ``SessionLost`` once and the client drops it (``lost`` stays true until then); the
    checkout after that opens a new session.
    """

    def __init__(
        self,
        servers: Union[str, Sequence[str], None] = None,
        *,
        search_path: Optional[str] = None,
        ttl: Optional[float] = None,
        failover_budget: Optional[float] = None,
    ) -> None:
        """``servers``: one cluster. ``search_path``: read as ``QLM_LICENSE`` is (license
        files, directories and clusters, in order). Neither: from the environment."""
    @classmethod
    def from_env(
        cls,
        vendor_var: Optional[str] = None,
        *,
        ttl: Optional[float] = None,
        failover_budget: Optional[float] = None,
    ) -> "Client": ...
    def trust_vendor_key(self, key: str) -> None:
        """Trusts a vendor public key for node-locked lines, in sessions opened from now on:
        call it before the first checkout."""
    def checkout(
        self,
        feature: str,
        version: Optional[str] = None,
        count: int = 1,
        *,
        wait: Optional[float] = None,
        borrow_until: Optional[datetime.datetime] = None,
    ) -> Seat:
        """Raises ``Denied``, ``Unreachable``, ``WaitTimeout``, ``NodeLockedRefused``, or
        ``SessionLost`` (once, after the session was lost; the next call opens a new one)."""
    @property
    def lost(self) -> bool:
        """True once the session was lost, until a checkout after ``SessionLost`` opens a new one."""
    @property
    def lost_reason(self) -> Optional[str]:
        """``"expired"`` or ``"unreachable"`` while ``lost``; else ``None``."""
    def status(self) -> Optional[Dict[str, Union[str, int, bool]]]:
        """``session_id``, ``servers``, ``leader``, ``heartbeats``, ``lost``; ``None`` with no session open."""
    def on_lost(self, callback: Callable[[str], object]) -> None:
        """``callback(reason)``, from the library's thread, when a session is lost (once per session)."""
    def close(self) -> None: ...
    def __enter__(self) -> "Client": ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool: ...
