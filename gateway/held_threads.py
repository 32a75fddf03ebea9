"""Anthropic message threads (beta ``message-threads-2026-08-12``) held by Relay for any upstream.

``thread: {"type": "create"}`` sends the full conversation; Relay relays it without ``thread``
and keeps, under the reply's id, the system prompt, the tools and every message including the
reply. ``{"type": "continue", "previous_message_id": id}`` carries only the new turn: Relay
claims the held turn (one successor per id, as on the Claude API), replays the thread's system
prompt and tools before the whole history, and keeps the new turn when the reply completes;
a call that fails lets the claim go so the client may try again.

To an upstream that holds threads itself (profile ``supports_threads``: the Claude API)
``thread`` and the beta header go through untouched, and the continued turn's tool results are
not "repaired" (``gateway.plans``).

Errors carry the ``error.details.error_code`` the anthropic SDK recovers from (it replays the
full history on ``thread_not_found`` and resends unthreaded on ``thread_unsupported_request``):
unknown, expired or another key's id → 404 ``thread_not_found``; an id already continued → 400
``thread_already_continued``; one being continued → 400 ``thread_continue_in_flight``; a
different ``system``/``tools`` → 400 ``thread_fingerprint_mismatch``; what Relay cannot hold
(``context_management``, an empty continue) → 400 ``thread_unsupported_request`` with
``details.unsupported``. Unanswered tool uses are refused, never repaired.
"""

from __future__ import annotations

from typing import Any

from gateway.conversations import (
    ConversationStore,
    Kind,
    ThreadAlreadyContinued,
    ThreadContinueInFlight,
    ThreadNotFound,
)
from gateway.domain import Dialect, Principal, Route
from gateway.errors import GatewayError, InvalidRequest, NotFound

__all__ = ["THREADS_BETA", "ThreadKeeper", "prepare"]

THREADS_BETA = "message-threads-2026-08-12"
KIND: Kind = "thread"
FIXED_FIELDS = ("system", "tools")
UNSUPPORTED_FIELDS = ("context_management",)


def thread_error(error: GatewayError, error_type: str, code: str, **details: Any) -> GatewayError:
    error.envelope = {
        "type": "error",
        "error": {"type": error_type, "message": error.message, "details": {"error_code": code, **details}},
    }
    return error


def _invalid(message: str, code: str, **details: Any) -> GatewayError:
    return thread_error(InvalidRequest(message), "invalid_request_error", code, **details)


def _unsupported(what: list[str]) -> GatewayError:
    message = f"thread: Relay cannot hold a thread with {', '.join(what)}; send the conversation without thread"
    return _invalid(message, "thread_unsupported_request", unsupported=what)


def native(route: Route) -> bool:
    return route.dialect is Dialect.ANTHROPIC and route.profile.get("supports_threads") is True


def _without_beta(headers: dict[str, str]) -> dict[str, str]:
    betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip() and b.strip() != THREADS_BETA]
    out = {k: v for k, v in headers.items() if k != "anthropic-beta"}
    if betas:
        out["anthropic-beta"] = ",".join(betas)
    return out


class ThreadKeeper:
    """Keeps one threaded call's turn (``gateway.relay.Keeper``)."""

    def __init__(
        self,
        store: ConversationStore,
        principal: Principal,
        fixed: dict[str, Any],
        messages: list[Any],
        parent: str | None,
    ) -> None:
        self.settled = False
        self._store = store
        self._principal = principal
        self.fixed = fixed
        self.history = messages
        self._parent = parent

    async def complete(self, reply: dict[str, Any]) -> None:
        content = reply.get("content") or []
        payload = {**self.fixed, "messages": [*self.history, {"role": "assistant", "content": content}]}
        who = {"tenant_id": self._principal.tenant_id, "key_id": self._principal.key_id}
        await self._store.put(KIND, str(reply.get("id") or ""), payload, parent_id=self._parent, **who)
        if self._parent is not None:
            await self._store.release(self._parent, continued=True, **who)

    async def abandon(self) -> None:
        if self._parent is not None:
            who = {"tenant_id": self._principal.tenant_id, "key_id": self._principal.key_id}
            await self._store.release(self._parent, continued=False, **who)


async def prepare(
    store: ConversationStore, principal: Principal, route: Route, body: dict[str, Any], headers: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str], ThreadKeeper | None]:
    """The body and headers to relay for a threaded request, and the keeper of its turn.

    Raises the thread errors above. A continue claims the held turn: the caller must hand the
    keeper to the relay, which completes or abandons it.
    """
    thread = body.get("thread")
    kind = thread.get("type") if isinstance(thread, dict) else None
    if kind not in ("create", "continue"):
        raise InvalidRequest('thread: must be {"type": "create"} or {"type": "continue", "previous_message_id": …}')
    if native(route):
        return body, headers, None
    unsupported = [name for name in UNSUPPORTED_FIELDS if name in body]
    body = {k: v for k, v in body.items() if k != "thread"}
    messages = list(body.get("messages") or [])
    if kind == "continue" and not messages:
        unsupported.append("empty_continue")
    if unsupported:
        raise _unsupported(unsupported)
    if kind == "create":
        fixed = {name: body[name] for name in FIXED_FIELDS if name in body}
        return body, _without_beta(headers), ThreadKeeper(store, principal, fixed, messages, None)
    previous = thread.get("previous_message_id") if isinstance(thread, dict) else None
    if not isinstance(previous, str) or not previous:
        raise InvalidRequest("thread.previous_message_id: field required")
    held = await _claim(store, principal, previous)
    keeper = ThreadKeeper(store, principal, {k: held[k] for k in FIXED_FIELDS if k in held}, [], previous)
    try:
        _check_continue(held, body, messages)
    except GatewayError:
        await keeper.abandon()
        raise
    history = [*held["messages"], *messages]
    keeper.history = history
    return {**body, **keeper.fixed, "messages": history}, _without_beta(headers), keeper


async def _claim(store: ConversationStore, principal: Principal, previous: str) -> dict[str, Any]:
    try:
        turn = await store.claim(previous, tenant_id=principal.tenant_id, key_id=principal.key_id)
    except ThreadNotFound:
        message = f"thread: no thread to continue from message '{previous}' (unknown or expired)"
        raise thread_error(NotFound(message), "not_found_error", "thread_not_found") from None
    except ThreadAlreadyContinued:
        message = f"thread: message '{previous}' was already continued; continue from the latest message"
        raise _invalid(message, "thread_already_continued") from None
    except ThreadContinueInFlight:
        message = f"thread: message '{previous}' is being continued by another request"
        raise _invalid(message, "thread_continue_in_flight") from None
    return turn.payload


def _check_continue(held: dict[str, Any], body: dict[str, Any], messages: list[Any]) -> None:
    changed = [name for name in FIXED_FIELDS if name in body and body[name] != held.get(name)]
    if changed:
        message = f"thread: {' and '.join(changed)} differ from the thread's; start a new thread to change them"
        raise _invalid(message, "thread_fingerprint_mismatch")
    last = held["messages"][-1] if held.get("messages") else {}
    asked = [b.get("id") for b in last.get("content") or [] if isinstance(b, dict) and b.get("type") == "tool_use"]
    first = messages[0] if isinstance(messages[0], dict) else {}
    content = first.get("content") if first.get("role") == "user" else None
    answered = {b.get("tool_use_id") for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_result"}
    missing = [tool_id for tool_id in asked if tool_id not in answered]
    if missing:
        raise InvalidRequest(
            "messages.0: `tool_use` ids were found without `tool_result` blocks immediately after: "
            + ", ".join(str(m) for m in missing)
            + ". Each `tool_use` block must have a corresponding `tool_result` block in the next message."
        )
