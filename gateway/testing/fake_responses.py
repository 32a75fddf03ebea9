"""Wire bodies of the OpenAI Responses API (``POST …/responses``) built from a :class:`Reply`.

Pure functions, same conventions as :mod:`gateway.testing.fake_replies`: the request's ``input``
(a string or a list of items) is viewed as Chat-style ``messages`` so the shared plan (echo text,
token estimates, tool-call ids) applies unchanged. Output items, in order: ``reasoning`` (the
reply's reasoning as one ``summary_text``), ``message`` (one ``output_text`` part), then one
``function_call`` per tool call. ``finish_reason`` "length" (or "max_tokens") ends the response
``incomplete`` with reason ``max_output_tokens`` ("content_filter"/"refusal": ``content_filter``).

Usage follows OpenAI semantics: ``input_tokens = input + cache_read + cache_write`` with
``input_tokens_details.cached_tokens = cache_read``.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from gateway.testing.fake_replies import (
    Reply,
    _event,
    _openai_finish,
    _Plan,
    _plan,
    _rand,
    split_pieces,
)

__all__ = ["responses_input_messages", "responses_object", "responses_stream"]

JSON = dict[str, Any]

_TEXT_PARTS = ("input_text", "output_text", "text")
_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Request fields the Response object echoes, with the API's defaults when the request omits them.
_ECHO_DEFAULTS: JSON = {
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "previous_response_id": None,
    "prompt_cache_key": None,
    "safety_identifier": None,
    "service_tier": "default",
    "temperature": 1.0,
    "top_logprobs": 0,
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}


# ---------------------------------------------------------------- request view


def _part_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") in _TEXT_PARTS)
    return ""


def responses_input_messages(body: JSON) -> list[JSON]:
    """The request's ``input`` as Chat-style messages (text flattened); other items pass as-is."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    out: list[JSON] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and item.get("type", "message") == "message" and "role" in item:
            out.append({"role": item["role"], "content": _part_text(item.get("content"))})
        else:
            out.append(item)
    return out


def _chat_view(body: JSON) -> JSON:
    view = {"model": body.get("model"), "messages": responses_input_messages(body), "tools": body.get("tools")}
    if body.get("instructions") is not None:
        view["system"] = body["instructions"]
    return view


# ---------------------------------------------------------------- building blocks


def _incomplete_reason(p: _Plan) -> str | None:
    return _INCOMPLETE_REASONS.get(_openai_finish(p))


def _usage(p: _Plan) -> JSON:
    inp = p.input_tokens + p.cache_read + p.cache_write
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": p.cache_read, "cache_write_tokens": p.cache_write},
        "output_tokens": p.output_tokens,
        "output_tokens_details": {"reasoning_tokens": len(p.reasoning) // 4},
        "total_tokens": inp + p.output_tokens,
    }


def _text_part(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _output(p: _Plan, body: JSON) -> list[JSON]:
    """The finished output items; the last one is ``incomplete`` when the response is."""
    items: list[JSON] = []
    if p.reasoning:
        item: JSON = {"type": "reasoning", "id": f"rs_{_rand()}", "status": "completed"}
        item["summary"] = [{"type": "summary_text", "text": p.reasoning}]
        if "reasoning.encrypted_content" in (body.get("include") or []):
            item["encrypted_content"] = base64.b64encode(p.reasoning.encode()).decode()
        items.append(item)
    if p.text:
        items.append(
            {
                "type": "message",
                "id": f"msg_{_rand()}",
                "role": "assistant",
                "status": "completed",
                "content": [_text_part(p.text)],
            }
        )
    for call_id, name, args in p.calls:
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{_rand()}",
                "call_id": call_id,
                "name": name,
                "arguments": args,
                "status": "completed",
            }
        )
    if items and _incomplete_reason(p) is not None:
        items[-1]["status"] = "incomplete"
    return items


def _response(rid: str, created: int, p: _Plan, body: JSON, status: str, output: list[JSON]) -> JSON:
    """A Response object; ``usage`` only once finished, ``incomplete_details`` only if incomplete."""
    obj: JSON = {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "model": p.model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "metadata": body.get("metadata") or {},
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store") is not False,
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "usage": None,
    }
    obj |= {k: body.get(k, default) for k, default in _ECHO_DEFAULTS.items()}
    if status in ("completed", "incomplete"):
        obj["completed_at"] = int(time.time())
        obj["usage"] = _usage(p)
    if status == "incomplete":
        obj["incomplete_details"] = {"reason": _incomplete_reason(p)}
    return obj


def _final_status(p: _Plan) -> str:
    return "incomplete" if _incomplete_reason(p) is not None else "completed"


# ---------------------------------------------------------------- public builders


def responses_object(reply: Reply, body: JSON) -> JSON:
    """A complete (or ``incomplete``) Response object, as ``POST …/responses`` returns it."""
    p = _plan(reply, _chat_view(body), "call_")
    return _response(f"resp_{_rand()}", int(time.time()), p, body, _final_status(p), _output(p, body))


def _item_events(item: JSON, index: int, chunks: int) -> list[JSON]:
    """``output_item.added`` … ``output_item.done`` for one finished item (deltas split in ``chunks``)."""
    at: JSON = {"item_id": item["id"], "output_index": index}
    events: list[JSON] = []
    if item["type"] == "reasoning":
        text = item["summary"][0]["text"]
        added: JSON = {k: v for k, v in item.items() if k != "encrypted_content"}
        added |= {"summary": [], "status": "in_progress"}
        part = {"type": "summary_text", "text": text}
        at_part = at | {"summary_index": 0}
        events.append({"type": "response.reasoning_summary_part.added", **at_part, "part": part | {"text": ""}})
        for piece in split_pieces(text, chunks):
            events.append({"type": "response.reasoning_summary_text.delta", **at_part, "delta": piece})
        events.append({"type": "response.reasoning_summary_text.done", **at_part, "text": text})
        events.append({"type": "response.reasoning_summary_part.done", **at_part, "part": part})
    elif item["type"] == "message":
        text = item["content"][0]["text"]
        added = item | {"status": "in_progress", "content": []}
        at_part = at | {"content_index": 0}
        events.append({"type": "response.content_part.added", **at_part, "part": _text_part("")})
        for piece in split_pieces(text, chunks):
            events.append({"type": "response.output_text.delta", **at_part, "delta": piece, "logprobs": []})
        events.append({"type": "response.output_text.done", **at_part, "text": text, "logprobs": []})
        events.append({"type": "response.content_part.done", **at_part, "part": _text_part(text)})
    else:
        args = item["arguments"]
        added = item | {"arguments": "", "status": "in_progress"}
        for piece in split_pieces(args, max(2, chunks)):
            events.append({"type": "response.function_call_arguments.delta", **at, "delta": piece})
        events.append({"type": "response.function_call_arguments.done", **at, "arguments": args})
    first = {"type": "response.output_item.added", "output_index": index, "item": added}
    return [first, *events, {"type": "response.output_item.done", "output_index": index, "item": item}]


def responses_stream(reply: Reply, body: JSON) -> list[bytes]:
    """Framed ``event:``/``data:`` events of a Responses stream, each with its ``sequence_number``.

    ``response.created`` and ``response.in_progress`` open it; the terminal event is
    ``response.completed``, ``response.incomplete``, or ``response.failed`` (``reply.stream_error``).
    There is no ``[DONE]`` line.
    """
    p = _plan(reply, _chat_view(body), "call_")
    rid, created = f"resp_{_rand()}", int(time.time())
    output = _output(p, body)
    opening = _response(rid, created, p, body, "in_progress", [])
    events: list[JSON] = [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
    ]
    for index, item in enumerate(output):
        events += _item_events(item, index, p.chunks)
    if reply.stream_error is not None:
        failed = _response(rid, created, p, body, "failed", output)
        failed["error"] = {"code": reply.error_type or "server_error", "message": reply.stream_error}
        events.append({"type": "response.failed", "response": failed})
    else:
        status = _final_status(p)
        events.append({"type": f"response.{status}", "response": _response(rid, created, p, body, status, output)})
    return [_event({"type": e["type"], "sequence_number": n, **e}) for n, e in enumerate(events)]
