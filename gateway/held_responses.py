"""Server-held Responses conversations: ``previous_response_id`` on every upstream path.

Relay keeps each Responses call's transcript unless the client sent ``store: false``: the
(expanded) input items, each with an id, and the final Response, whose reasoning items carry
their sealed ``encrypted_content`` even when the client did not ask for it. A continuation reads
one row (:mod:`gateway.conversations`) and sends the stored input and output before the new
input; ``instructions`` and ``tools`` are not inherited, as on OpenAI. The turn is written before
the reply's last byte (in memory, written behind in batches: ``ConversationStore.keep``), so a
client that continues at once finds it. ``store: false`` (Codex's
mode) leaves nothing behind: such an id, an expired one, or one of another key answers 400
``previous_response_not_found``.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from gateway.conversations import ConversationStore, Kind
from gateway.domain import Principal
from gateway.errors import InvalidRequest, NotFound

log = logging.getLogger("relay")
KIND: Kind = "response"


def previous_not_found(response_id: str) -> InvalidRequest:
    message = (
        f"Previous response with id '{response_id}' not found. Responses created with store: false, "
        "expired ones and those of another key cannot be continued."
    )
    err = InvalidRequest(message)
    err.envelope = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
    }
    return err


def response_not_found(response_id: str) -> NotFound:
    message = f"Response with id '{response_id}' not found."
    err = NotFound(message)
    err.envelope = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return err


def as_items(value: Any) -> list[dict[str, Any]]:
    """``input`` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return list(value) if isinstance(value, list) else []


async def expand(store: ConversationStore, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """The body with the stored conversation before its input (unchanged without ``previous_response_id``)."""
    previous = body.get("previous_response_id")
    if not previous:
        return body
    if not isinstance(previous, str):
        raise InvalidRequest("previous_response_id: must be a string")
    turn = await store.get(KIND, previous, tenant_id=principal.tenant_id, key_id=principal.key_id)
    if turn is None:
        raise previous_not_found(previous)
    # A Responses-native upstream's reasoning without encrypted_content can only be replayed by an id
    # the upstream may not have kept: leave it out (the upstream accepts a history without it).
    output = [
        item
        for item in turn.payload["response"]["output"]
        if item.get("type") != "reasoning" or item.get("encrypted_content")
    ]
    held = [*turn.payload["input"], *output]
    return {**body, "input": [*held, *as_items(body.get("input"))]}


class ResponseKeeper:
    """Keeps one Responses call's turn (``gateway.relay.Keeper``)."""

    def __init__(self, store: ConversationStore, principal: Principal, body: dict[str, Any]) -> None:
        self.settled = False
        self._store = store
        self._principal = principal
        self._parent = body.get("previous_response_id")
        self._items = [
            item if item.get("id") else {**item, "id": _item_id(item)} for item in as_items(body.get("input"))
        ]
        self._include = "reasoning.encrypted_content" in (body.get("include") or [])

    async def complete(self, reply: dict[str, Any]) -> None:
        payload = {"input": self._items, "response": reply, "include": self._include}
        kept = self._store.keep(
            KIND,
            str(reply["id"]),
            payload,
            tenant_id=self._principal.tenant_id,
            key_id=self._principal.key_id,
            parent_id=self._parent,
        )
        if not kept:
            log.warning("response %s not kept: larger than RELAY_CONVERSATION_MAX_BYTES, or a taken id", reply["id"])

    async def abandon(self) -> None:
        return None


def keeper(store: ConversationStore, principal: Principal, body: dict[str, Any]) -> ResponseKeeper | None:
    """The keeper of this call's turn, or None when the client said not to keep it."""
    return None if body.get("store") is False else ResponseKeeper(store, principal, body)


def _item_id(item: dict[str, Any]) -> str:
    """An id for a client item that came without one (``input_items`` lists every item by id)."""
    prefix = {"function_call_output": "fco_", "custom_tool_call_output": "ctco_"}.get(str(item.get("type")), "msg_")
    return prefix + secrets.token_hex(12)


def client_view(payload: dict[str, Any]) -> dict[str, Any]:
    """A kept Response as its client first saw it (carries only where it asked for them)."""
    response: dict[str, Any] = payload["response"]
    if payload.get("include"):
        return response
    output = [{k: v for k, v in item.items() if k != "encrypted_content"} for item in response["output"]]
    return {**response, "output": output}
