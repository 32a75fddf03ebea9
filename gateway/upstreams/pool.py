"""Which credential of an upstream's key pool carries an attempt, and what an answer says about that key.

Choice, per attempt: among the pool's healthy keys (not cooling, not disabled, circuit not open, under their
own rpm/tpm) of the best priority, the conversation's sticky key if it has one (``affinity``); else, for a
request of a conversation, the weighted rendezvous hash of the conversation and the keys (every worker and
replica picks the same key without asking anyone, and conversations still split by weight); else a weighted
random choice. A lower priority is used only when every better key is out.

Health: 401/403 disables a key (kept in the database with the upstream's reason, until re-enabled); 429 cools
it for its ``retry-after`` (or 1, 2, 4 … 60 s); connect errors and 5xx open its circuit (``Breakers``, per key).
The pool's last usable key is never taken out: with nothing to move to, its errors reach the client as they
did before pools existed, and a pool cannot shrink to nothing by itself (new-api#3536). Verdicts are shared
with every worker and replica through Redis pub/sub (``Invalidation.publish``); a lost message costs a few
refused requests, each of which moves on to another key.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from gateway.domain import Upstream, UpstreamKey
from gateway.upstreams.affinity import Affinity, Sticky
from gateway.upstreams.breaker import Breakers
from gateway.upstreams.key_rates import KeyRates
from gateway.upstreams.retry import retry_after

COOL_DEFAULT_S = 1.0
COOL_MAX_S = 60.0
DISABLED_LOCAL_S = 60.0
"""How long a process keeps a refused key out on its own word (the database's state, read with the routes,
carries it after that): a key re-enabled from the CLI is back within this time, from the API or UI at once."""

_decode = msgspec.json.Decoder(dict[str, object]).decode
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class _Health:
    cool_until: float = 0.0
    cools: int = 0
    disabled_until: float = 0.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an attempt's answer did to its key: ``disabled`` (with the reason) or ``cooling`` (seconds)."""

    disabled: str | None = None
    cooling_s: float | None = None


class KeyPool:
    def __init__(
        self,
        breakers: Breakers,
        affinity: Affinity | None = None,
        rates: KeyRates | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.breakers = breakers
        self.affinity = affinity or Affinity()
        self.rates = rates
        self._clock = clock
        self._rng = rng
        self._health: dict[str, _Health] = {}
        self.publish: Callable[[str], None] | None = None
        """Set by the services: send a verdict to every other worker and replica (``apply`` receives it)."""

    def breaker_id(self, upstream: Upstream) -> str:
        """The circuit of the key an upstream copy carries; the upstream's own when it has no pool to move in."""
        return _breaker_id(upstream, upstream.key_id)

    async def pick(self, upstream: Upstream, conversation: str | None, tried: Sequence[str] = ()) -> UpstreamKey | None:
        """The key for the next attempt on ``upstream``, or None when every key not in ``tried`` is out."""
        keys = upstream.keys
        if len(keys) == 1:  # the usual upstream: never taken out; only its own per-minute limits hold it back
            key = keys[0]
            if key.id in tried or not await self._admit(key):
                return None
            return key
        now = self._clock()
        healthy = [k for k in keys if k.id not in tried and self._usable(upstream, k, now)]
        while healthy:
            best = min(k.priority for k in healthy)
            tier = [k for k in healthy if k.priority == best]
            key = await self._choose(tier, conversation)
            if await self._admit(key):
                return key
            healthy.remove(key)  # at its own per-minute limit: the next best
        return None

    async def _admit(self, key: UpstreamKey) -> bool:
        return self.rates is None or (key.rpm is None and key.tpm is None) or await self.rates.admit(key)

    async def _choose(self, tier: list[UpstreamKey], conversation: str | None) -> UpstreamKey:
        weighted = [k for k in tier if k.weight > 0] or tier
        if len(weighted) == 1:
            return weighted[0]
        if conversation is None:
            return _weighted_random(weighted, self._rng())
        sticky = await self.affinity.get(conversation)
        if sticky is not None:
            for k in weighted:
                if k.id == sticky.key_id:
                    return k
        return rendezvous(weighted, conversation)

    def _usable(self, upstream: Upstream, key: UpstreamKey, now: float) -> bool:
        h = self._health.get(key.id)
        if h is not None and (h.cool_until > now or h.disabled_until > now):
            return False
        return self.breakers.state(_breaker_id(upstream, key.id)) != "open"

    def cooling_left(self, upstream: Upstream) -> float | None:
        """Seconds until the first cooling key of ``upstream`` is back (None: none is cooling)."""
        now = self._clock()
        left = [h.cool_until - now for k in upstream.keys if (h := self._health.get(k.id)) and h.cool_until > now]
        return min(left) if left else None

    def judge(self, upstream: Upstream, status: int, headers: Mapping[str, str], message: str) -> Verdict:
        """Take what an upstream answered with the copy's key into account (before the first byte)."""
        key_id = upstream.key_id
        if not key_id or status not in (401, 403, 429) or not self._others_active(upstream):
            return Verdict()
        now = self._clock()
        h = self._health.setdefault(key_id, _Health())
        if status == 429:
            wait = retry_after(headers)
            if wait is None:
                wait = min(COOL_DEFAULT_S * 2**h.cools, COOL_MAX_S)
            h.cools += 1
            h.cool_until = now + wait
            self._share({"k": key_id, "cool_until": h.cool_until})
            return Verdict(cooling_s=wait)
        h.disabled_until = now + DISABLED_LOCAL_S
        self._share({"k": key_id, "disabled_until": h.disabled_until})
        return Verdict(disabled=f"upstream answered {status}: {message}"[:500])

    def succeeded(self, upstream: Upstream) -> None:
        h = self._health.get(upstream.key_id)
        if h is not None and h.cools and h.cool_until <= self._clock():
            h.cools = 0  # the backoff of the next 429 starts again from the beginning

    def _others_active(self, upstream: Upstream) -> bool:
        now = self._clock()
        return any(
            k.id != upstream.key_id and not ((h := self._health.get(k.id)) and h.disabled_until > now)
            for k in upstream.keys
        )

    def _share(self, verdict: dict[str, object]) -> None:
        if self.publish is not None:
            self.publish(_encode(verdict).decode())

    def apply(self, payload: str) -> None:
        """A verdict another worker or replica reached (``_share``)."""
        try:
            doc = _decode(payload)
        except msgspec.DecodeError:
            return
        key_id = doc.get("k")
        if not isinstance(key_id, str):
            return
        if doc.get("enabled") is True:
            self._health.pop(key_id, None)
            return
        h = self._health.setdefault(key_id, _Health())
        for field in ("cool_until", "disabled_until"):
            value = doc.get(field)
            if isinstance(value, int | float) and value > getattr(h, field):
                setattr(h, field, float(value))

    def enabled(self, key_id: str) -> None:
        """An operator put ``key_id`` back: every process lets it in at once (else within ``DISABLED_LOCAL_S``)."""
        self._health.pop(key_id, None)
        self._share({"k": key_id, "enabled": True})

    def states(self, upstream: Upstream) -> dict[str, str]:
        """Each pool key's runtime state in this process: ``active``, ``cooling``, ``disabled`` or ``circuit_open``."""
        now = self._clock()
        out: dict[str, str] = {}
        for k in upstream.keys:
            h = self._health.get(k.id)
            if h is not None and h.disabled_until > now:
                out[k.id] = "disabled"
            elif h is not None and h.cool_until > now:
                out[k.id] = "cooling"
            elif not self._usable(upstream, k, now):
                out[k.id] = "circuit_open"
            else:
                out[k.id] = "active"
        return out

    async def stick(self, conversation: str | None, key_id: str, model: str) -> None:
        if conversation is not None:
            await self.affinity.put(conversation, Sticky(key_id, model))


def _breaker_id(upstream: Upstream, key_id: str) -> str:
    return f"{upstream.id}/{key_id}" if key_id and len(upstream.keys) > 1 else upstream.id


def _weighted_random(keys: list[UpstreamKey], u: float) -> UpstreamKey:
    total = sum(k.weight for k in keys)
    if total <= 0:
        return keys[int(u * len(keys)) % len(keys)]
    point = u * total
    for k in keys:
        point -= k.weight
        if point < 0:
            return k
    return keys[-1]


def rendezvous(keys: Sequence[UpstreamKey], conversation: str) -> UpstreamKey:
    """Weighted rendezvous (highest random weight) hashing: each key scores ``-w / ln(u)`` with ``u`` a hash of
    (conversation, key) in (0, 1); the best score wins. Same answer everywhere, shares follow the weights, and
    when a key leaves only its own conversations move."""
    best: UpstreamKey = keys[0]
    best_score = -math.inf
    for k in keys:
        digest = hashlib.blake2b(f"{conversation}\x00{k.id}".encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)
        score = max(k.weight, 1e-9) / -math.log(u)
        if score > best_score:
            best, best_score = k, score
    return best
