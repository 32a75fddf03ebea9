"""Sign-in throttling that slows guessing without ever locking the account's owner out.

Failed sign-ins are rows of ``login_attempts`` (email submitted, client address, time), so the counts hold
across workers and replicas. Within ``WINDOW``:

- **per (account, address)**: at most ``PAIR_LIMIT`` failures for one email from one address; past that,
  that address's sign-ins to that account are refused (429) without checking the password;
- **per address**: at most ``IP_LIMIT`` failures from one address, whatever the emails (password spraying);
- **per account, from every address**: no refusal, only a slow-down. Past ``SLOW_AFTER`` failures, each
  sign-in to that account waits ``STEP_S`` more per further failure, capped at ``MAX_DELAY_S`` seconds.

The old rule (20 failures per submitted email refused that account for everyone) let anyone lock an admin
out by typing wrong passwords for their address. Now an attacker at one address is stopped at
``PAIR_LIMIT`` guesses there, and a distributed one is slowed to one guess per ``MAX_DELAY_S`` per
connection, while the owner, from their own address, still signs in (at most ``MAX_DELAY_S`` later).

Each attempt is recorded (committed) *before* its password is checked and counted again afterwards with
one slack, so parallel guesses cannot slip past a limit; a successful sign-in removes its provisional row.
The client address is the connection's, or the one a proxy in ``RELAY_TRUSTED_PROXIES`` forwarded
(uvicorn applies ``X-Forwarded-For`` from those only; none are trusted by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import LoginAttempt

WINDOW = timedelta(hours=1)
PAIR_LIMIT = 10
IP_LIMIT = 100
SLOW_AFTER = 10
STEP_S = 0.5
MAX_DELAY_S = 3.0
KEEP_ATTEMPTS = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Failures:
    """Failed sign-ins within the window."""

    pair: int
    """for this account from this address"""
    address: int
    """from this address, any account"""
    account: int
    """for this account, from every address"""

    def refused(self, *, slack: int = 0) -> bool:
        """Past a hard limit (the attempt itself, once recorded, is the ``slack``)."""
        return self.pair > PAIR_LIMIT - 1 + slack or self.address > IP_LIMIT - 1 + slack

    @property
    def delay_s(self) -> float:
        """The account's slow-down, the same for every address: never a lock-out."""
        over = self.account - SLOW_AFTER
        return 0.0 if over < 0 else min(MAX_DELAY_S, STEP_S * (over + 1))


def _email(email: str) -> str:
    return email[:320]


def _ip(ip: str) -> str:
    return ip[:64]


async def failures(session: AsyncSession, *, email: str, ip: str, now: datetime | None = None) -> Failures:
    since = (now or datetime.now(UTC)) - WINDOW
    recent = sa.select(sa.func.count()).select_from(LoginAttempt).where(LoginAttempt.created_at >= since)
    by_account = recent.where(LoginAttempt.email == _email(email))
    account = await session.scalar(by_account)
    pair = await session.scalar(by_account.where(LoginAttempt.ip == _ip(ip)))
    address = await session.scalar(recent.where(LoginAttempt.ip == _ip(ip)))
    return Failures(pair=int(pair or 0), address=int(address or 0), account=int(account or 0))


async def record_failure(session: AsyncSession, *, email: str, ip: str) -> int:
    """A provisional failure, committed before the password is checked; its id, to forget it on success."""
    row = LoginAttempt(email=_email(email), ip=_ip(ip))
    session.add(row)
    await session.flush()
    return row.id


async def forget_attempt(session: AsyncSession, attempt_id: int) -> None:
    """A provisional failure turned out to be a success."""
    await session.execute(sa.delete(LoginAttempt).where(LoginAttempt.id == attempt_id))


async def prune(session: AsyncSession, *, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    await session.execute(sa.delete(LoginAttempt).where(LoginAttempt.created_at < now - KEEP_ATTEMPTS))
