"""Types of the extension module quorumlm._native (re-exported by quorumlm)."""

import datetime
from types import TracebackType
from typing import Callable, Optional, Sequence, Type, Union

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
    def node_locked(self) -> bool: ...
    @property
    def source(self) -> str: ...
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
    """The license servers (or search path) and this process's session on them."""

    def __init__(
        self,
        servers: Union[str, Sequence[str], None] = None,
        *,
        search_path: Optional[str] = None,
        ttl: Optional[float] = None,
    ) -> None: ...
    @classmethod
    def from_env(cls, vendor_var: Optional[str] = None, *, ttl: Optional[float] = None) -> "Client": ...
    def trust_vendor_key(self, key: str) -> None: ...
    def checkout(
        self,
        feature: str,
        version: Optional[str] = None,
        count: int = 1,
        *,
        wait: Optional[float] = None,
        borrow_until: Optional[datetime.datetime] = None,
    ) -> Seat: ...
    @property
    def lost(self) -> bool: ...
    @property
    def lost_reason(self) -> Optional[str]: ...
    def on_lost(self, callback: Callable[[str], object]) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Client": ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool: ...
