"""The ledger's durable buffer: each usage record is appended to a local spool file as it is taken.

Why a local file (and not a Redis Stream): it is the one buffer that survives every fault the
ledger must survive with nothing else running. ``write(2)`` hands the bytes to the kernel before
the response's last byte is sent, so the death of the process (SIGKILL, OOM kill, a crash) loses
nothing; an ``fsync`` every ``SYNC_EVERY_S`` bounds what a crash of the whole machine could lose.
Redis needs no persistence for it, and the embedded default (no Redis) gets the same guarantee.
Cost on the response path: one msgspec encode and one ``write`` per record (``bench/metering.py``).

Layout, one directory per database (``<root>/<fingerprint of the database URL>``, so a spool is
only ever replayed into the database it was meant for)::

    <owner>.lock         held with flock(LOCK_EX) for the owning process's life
    <owner>.<n>.spool    JSON lines, one UsageRecord each, appended in the order taken

A segment is deleted once the ledger has written every record in it, and the live one is
truncated whenever the ledger has caught up, so a healthy spool holds only what is in flight.
A process that can lock another owner's ``.lock`` knows that owner is dead (the kernel drops a
flock with its process): it *adopts* the orphan's records by appending them to its own spool
(fsynced) before deleting the orphan's files. A replay writes nothing twice: the ledger is
idempotent on the request id. Adoption runs at start and every ``ADOPT_EVERY_S``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from gateway.metering.base import UsageRecord

log = logging.getLogger("relay.ledger")
SEGMENT_BYTES = 4 * 1024 * 1024
SYNC_EVERY_S = 0.2
ADOPT_EVERY_S = 30.0
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(UsageRecord).decode


def database_fingerprint(database_url: str) -> str:
    """Names a database's spool and handoff, so records never cross into another database."""
    return hashlib.sha256(database_url.encode()).hexdigest()[:16]


def spool_dir(root: Path, database_url: str) -> Path:
    return root / database_fingerprint(database_url)


@dataclass(slots=True)
class _Segment:
    path: Path
    fd: int
    end: int = 0
    """Sequence number just past the last record appended to it."""
    size: int = 0
    dirty: bool = False
    """Written since its last fsync."""


@dataclass(slots=True)
class Orphans:
    """Records of dead owners, and their files, deleted by ``release`` once the records are safe elsewhere."""

    records: list[UsageRecord] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    locks: list[int] = field(default_factory=list)

    def release(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)
        for fd in self.locks:
            os.close(fd)
        self.files.clear()
        self.locks.clear()


class Spool:
    """Append-only segment files of one process; ``appended``/``release`` count records like the ledger does."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.appended = 0
        self._lock_fd = -1
        self._live: _Segment | None = None
        self._closed: list[_Segment] = []
        """Rotated segments, oldest first, kept until every record in them is written."""
        self._n = 0
        self._failed = False

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.directory / f"{self.owner}.lock"
        self._lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._live = self._new_segment()

    def append(self, rec: UsageRecord) -> None:
        """Write one record before its response ends. A failing disk is logged, never raised (memory keeps it)."""
        self.appended += 1
        live = self._live
        if live is None:
            return
        line = _encode(rec) + b"\n"
        try:
            os.write(live.fd, line)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.error("ledger spool: cannot write %s (%s); records are kept in memory only", live.path, exc)
            return
        live.size += len(line)
        live.end = self.appended
        live.dirty = True
        if live.size >= SEGMENT_BYTES:
            self._closed.append(live)
            self._live = self._new_segment()

    def release(self, done: int) -> None:
        """The ledger has written the first ``done`` records: drop the spool space they held."""
        while self._closed and self._closed[0].end <= done:
            seg = self._closed.pop(0)
            seg.path.unlink(missing_ok=True)
            os.close(seg.fd)
        live = self._live
        if live is not None and live.size and done >= self.appended and not self._closed:
            os.ftruncate(live.fd, 0)
            live.size = 0

    def to_sync(self) -> list[int]:
        """The files written since the last call, for ``fsync_all`` (called on the event loop)."""
        fds = []
        for seg in [*self._closed, *([self._live] if self._live else [])]:
            if seg.dirty:
                seg.dirty = False
                fds.append(seg.fd)
        return fds

    def claim_orphans(self) -> Orphans:
        """Lock every dead owner's files and read their records (blocking: run it in a thread)."""
        found = Orphans()
        for lock in sorted(self.directory.glob("*.lock")):
            owner = lock.name[: -len(".lock")]
            if owner == self.owner:
                continue
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # its owner is alive
                continue
            found.locks.append(fd)
            segments = sorted(self.directory.glob(f"{owner}.*.spool"), key=_segment_number)
            for path in segments:
                found.records.extend(_read(path))
            found.files.extend([*segments, lock])
        return found

    def close(self, *, all_written: bool) -> None:
        """Close the files; delete them when every record was written, else leave them for the next process."""
        segments = [*self._closed, *([self._live] if self._live else [])]
        for seg in segments:
            with contextlib.suppress(OSError):
                if not all_written:
                    os.fsync(seg.fd)
                os.close(seg.fd)
            if all_written:
                seg.path.unlink(missing_ok=True)
        self._closed, self._live = [], None
        if self._lock_fd >= 0:
            if all_written:
                (self.directory / f"{self.owner}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _new_segment(self) -> _Segment:
        self._n += 1
        path = self.directory / f"{self.owner}.{self._n}.spool"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return _Segment(path, fd, end=self.appended)


def fsync_all(fds: list[int]) -> None:
    """Blocking, for a thread. A segment released (closed) meanwhile fails harmlessly: its records are written."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.fsync(fd)


def _segment_number(path: Path) -> int:
    try:
        return int(path.name.rsplit(".", 2)[1])
    except (IndexError, ValueError):
        return 0


def _read(path: Path) -> list[UsageRecord]:
    records = []
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.error("ledger spool: cannot read %s (%s)", path, exc)
        return []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            records.append(_decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError):
            # Only a machine crash mid-write tears a line: it is the last one, and it was never answered.
            log.warning("ledger spool: skipped an unreadable line in %s", path)
    return records
