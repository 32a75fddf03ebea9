"""Same-dialect stream and body taps: rename the model, read usage, notice the end. Pure, no I/O.

They share the interface of the converters' stream transcoders (``feed`` / ``finish`` /
``fail``), so the relay has one streaming loop whether it converts or not. Events that need
no change pass through as the upstream's own text, so fields we don't model survive.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.convert.usage import usage_from_anthropic, usage_from_openai, usage_from_responses, usage_to_anthropic
from gateway.domain import Usage
from gateway.protocols.sse import SSEEvent, is_utf8, leading_run

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def rename_model_in_body(body: bytes, model: str) -> tuple[bytes, dict[str, Any]]:
    """A non-streamed response with the public model name; also returns the parsed document."""
    doc = _decode(body)
    if not isinstance(doc, dict):
        raise ValueError("response is not a JSON object")
    if "model" in doc:
        doc["model"] = model
    return _encode(doc), doc


class AnthropicPassthrough:
    """Anthropic SSE to an Anthropic client."""

    def __init__(self, *, model: str) -> None:
        self._model = model
        self.usage = Usage()
        self.finished = False
        self.started = False
        self.out_chars = 0
        """Size of the content relayed, for an estimate when the upstream never reports output usage."""
        self.usage_final = False
        """The upstream's final usage arrived (``message_delta``); until then output counts are partial."""

    def feed(self, ev: SSEEvent) -> list[SSEEvent]:
        kind = ev.event
        if kind in ("message_start", "message_delta", "error") or kind is None:
            doc = _loads(ev.data)
            if doc is None:
                return self.fail("upstream sent a malformed stream event")
            kind = kind or doc.get("type")
            if kind == "message_start":
                self.started = True
                msg = doc.get("message")
                if isinstance(msg, dict):
                    msg["model"] = self._model
                    self.usage = usage_from_anthropic(msg.get("usage"))
                return [SSEEvent("message_start", _encode(doc).decode())]
            if kind == "message_delta" and isinstance(doc.get("usage"), dict):
                self.usage_final = True
                # message_delta's counts are cumulative and override message_start's, field by field.
                self.usage = usage_from_anthropic({**usage_to_anthropic(self.usage), **doc["usage"]})
            elif kind == "error":
                self.finished = True
        elif kind == "message_stop":
            self.finished = True
        elif kind == "content_block_delta":
            self.out_chars += max(len(ev.data) - _DELTA_ENVELOPE, 0)  # not decoded: the fast path stays fast
        return [ev]

    def pass_raw(self, chunk: bytes) -> tuple[bytes, bytes]:
        """Split ``chunk`` into its leading content deltas, relayed as they came, and the rest.

        Content deltas need no change (the model rename, usage, errors and the end are other
        events), so they skip decoding. The rest takes the event path. The caller offers a chunk
        only when it starts a fresh event.
        """
        if not self.started or b"\r" in chunk:
            return b"", chunk
        end, n = leading_run(chunk, _is_plain_delta)
        if n:
            self.out_chars += max(end - n * (_EVENT_FRAME + _DELTA_ENVELOPE), 0)
        return chunk[:end], chunk[end:]

    def finish(self) -> list[SSEEvent]:
        return [] if self.finished else self.fail("upstream stream ended before message_stop")

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        self.finished = True
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        return [SSEEvent("error", _encode(body).decode())]


class OpenAIPassthrough:
    """OpenAI chunks to an OpenAI client; drops the usage-only chunk when the client did not ask for it."""

    def __init__(self, *, model: str, client_wants_usage: bool, upstream_model: str | None = None) -> None:
        self._model = model
        self._wants_usage = client_wants_usage
        self.usage = Usage()
        self.finished = False
        self.started = False
        self.usage_final = False
        self._decoded_chars = 0
        # The model rename as bytes, for chunks relayed without decoding (pass_raw).
        self._needle = b'"model":' + _encode(upstream_model) if upstream_model is not None else None
        self._renamed = b'"model":' + _encode(model)
        self._raw_bytes = 0
        self._raw_events = 0
        self._envelope: int | None = None
        """Bytes of a content chunk's JSON around its text, measured on the first one relayed raw."""

    @property
    def out_chars(self) -> int:
        """Size of the content relayed, for an estimate when the upstream never reports output usage.

        Chunks relayed raw count as their bytes less the JSON around the text (close, not exact).
        """
        if not self._raw_events or self._envelope is None:
            return self._decoded_chars
        return self._decoded_chars + max(self._raw_bytes - self._raw_events * (self._envelope + _DATA_FRAME), 0)

    def _plain(self, event: bytes) -> bool:
        """A chunk that needs nothing but the rename (``leading_run``'s test), counted for the estimate."""
        if self._needle is None or not _is_plain_chunk(event, self._needle):
            return False
        if self._envelope is None:  # decode until one chunk with text shows the envelope's size
            doc = _loads(event[_DATA_PREFIX:].decode("utf-8", errors="replace"))
            chars = _delta_chars(doc) if doc is not None else 0
            self._decoded_chars += chars
            if chars:
                self._envelope = len(event) - _DATA_PREFIX - chars
            return True
        self._raw_bytes += len(event) + 2
        self._raw_events += 1
        return True

    def pass_raw(self, chunk: bytes) -> tuple[bytes, bytes]:
        """Split ``chunk`` into its leading plain content chunks, renamed as bytes, and the rest.

        A plain chunk is one ``data:`` line naming the upstream model once, with no usage, error or
        ``[DONE]``: nothing to decide, so no decoding. The rest (and any unusual shape: CR line ends,
        comments, multi-line data, the model spelt another way) takes the event path. The caller
        offers a chunk only when it starts a fresh event.
        """
        needle = self._needle
        if needle is None or b"\r" in chunk:
            return b"", chunk
        end, n = leading_run(chunk, self._plain)
        if not n:
            return b"", chunk
        self.started = True
        head = chunk[:end]
        return (head if needle == self._renamed else head.replace(needle, self._renamed)), chunk[end:]

    def feed(self, ev: SSEEvent) -> list[SSEEvent]:
        if ev.data.strip() == "[DONE]":
            self.finished = True
            return [SSEEvent(None, "[DONE]")]
        doc = _loads(ev.data)
        if doc is None:
            return self.fail("upstream sent a malformed stream chunk")
        if "error" in doc:
            self.finished = True
            return [SSEEvent(None, ev.data), SSEEvent(None, "[DONE]")]
        self.started = True
        self._decoded_chars += _delta_chars(doc)
        if "model" in doc:
            doc["model"] = self._model
        if doc.get("usage"):
            self.usage_final = True
            self.usage = usage_from_openai(doc["usage"])
            if not self._wants_usage:
                if not doc.get("choices"):
                    return []
                doc.pop("usage")
        return [SSEEvent(None, _encode(doc).decode())]

    def finish(self) -> list[SSEEvent]:
        return [] if self.finished else self.fail("upstream stream ended before [DONE]")

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        self.finished = True
        body = {"error": {"message": message, "type": error_type, "code": None}}
        return [SSEEvent(None, _encode(body).decode()), SSEEvent(None, "[DONE]")]


_DELTA_ENVELOPE = len('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}')
_EVENT_FRAME = len("event: \ndata: \n\n") + len("content_block_delta")
_DATA_PREFIX = len("data: ")
_DATA_FRAME = len("data: \n\n")


def _is_plain_delta(event: bytes) -> bool:
    return event.startswith(b"event: content_block_delta\ndata: ") and event.count(b"\n") == 1 and is_utf8(event)


def _is_plain_chunk(event: bytes, needle: bytes) -> bool:
    return (
        event.startswith(b"data: {")
        and b"\n" not in event
        and event.count(needle) == 1
        and event.count(b'"usage"') == event.count(b'"usage":null')
        and b'"error"' not in event
        and is_utf8(event)
    )


def _delta_chars(chunk: dict[str, Any]) -> int:
    n = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        for field in ("content", "reasoning_content", "reasoning"):
            value = delta.get(field)
            if isinstance(value, str):
                n += len(value)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                n += len(str(call["function"].get("arguments") or ""))
    return n


def _loads(data: str) -> dict[str, Any] | None:
    try:
        doc = _decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


_RESPONSE_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _EventHead(msgspec.Struct):
    """What the Responses lane reads of an event; the rest of the JSON is only checked."""

    type: str = ""
    sequence_number: int | None = None
    response: msgspec.Raw | None = None


_decode_head = msgspec.json.Decoder(_EventHead).decode


class ResponsesPassthrough:
    """A Responses upstream's events to a Responses client, as they came but for three names.

    The Response carries Relay's id (the key of the conversation store, so no upstream can choose
    or collide with it), the public model name, and the client's ``previous_response_id`` (Relay
    expanded it into the input). The lifecycle events need the renames, so they are decoded; so is
    every event with something to decide. The rest (the deltas, most of a stream) take the fast
    lane, ``pass_raw``: their bytes as they came, with only the type and the sequence number read
    (a stream cut by the upstream ends with a ``response.failed`` that continues the numbering).
    """

    def __init__(self, *, model: str, response_id: str, previous_response_id: str | None) -> None:
        self._names = {"model": model, "id": response_id, "previous_response_id": previous_response_id}
        self._seq = -1
        self._base: dict[str, Any] = {"id": response_id, "object": "response", "model": model, "output": []}
        self.usage = Usage()
        self.finished = False
        self.response: dict[str, Any] | None = None

    @property
    def kept_response(self) -> dict[str, Any] | None:
        return self.response

    def rename(self, response: dict[str, Any]) -> dict[str, Any]:
        response.update(self._names)
        return response

    def pass_raw(self, chunk: bytes) -> tuple[bytes, bytes]:
        """Split ``chunk`` into its leading events that ``feed`` would send on unchanged, and the rest.

        Such an event is one ``data:`` line holding a JSON object with a ``type`` other than ``error``,
        no ``response`` and an integer (or no) ``sequence_number``, after at most one ``event:`` line:
        the framing ``feed``'s re-encoding gives back byte for byte (tested). The caller offers a chunk
        only when it starts a fresh event.
        """
        if self.finished or b"\r" in chunk:
            return b"", chunk
        end, _ = leading_run(chunk, self._plain)
        return chunk[:end], chunk[end:]

    def _plain(self, event: bytes) -> bool:
        data = event
        if event.startswith(b"event: "):
            line_end = event.find(b"\n")
            if line_end <= 7 or not event[7:line_end].isascii():
                return False
            data = event[line_end + 1 :]
        if not data.startswith(b"data: {") or b"\n" in data:
            return False
        if not is_utf8(data):  # the JSON decoder skips the fields it does not read, unchecked
            return False
        try:
            head = _decode_head(data[6:])
        except (msgspec.MsgspecError, RecursionError):
            return False
        if not head.type or head.type == "error" or head.response is not None:
            return False
        if head.sequence_number is not None:
            self._seq = head.sequence_number
        return True

    def feed(self, ev: SSEEvent) -> list[SSEEvent]:
        doc = _loads(ev.data)
        if doc is None:
            return self.fail("upstream sent a malformed stream event")
        kind = doc.get("type") or ev.event
        if isinstance(doc.get("sequence_number"), int):
            self._seq = doc["sequence_number"]
        response = doc.get("response")
        if isinstance(response, dict):
            self._base = self.rename(response)
            if kind in _RESPONSE_TERMINAL:
                self.finished = True
                self.response = response
                self.usage = usage_from_responses(response.get("usage"))
            return [SSEEvent(ev.event or str(kind), _encode(doc).decode())]
        if kind == "error":
            self.finished = True
        return [ev]

    def finish(self) -> list[SSEEvent]:
        return [] if self.finished else self.fail("upstream stream ended before the response completed")

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        self.finished = True
        self._seq += 1
        code = "rate_limit_exceeded" if error_type == "rate_limit_error" else "server_error"
        response = {**self._base, "status": "failed", "error": {"code": code, "message": message}}
        payload = {"type": "response.failed", "sequence_number": self._seq, "response": response}
        return [SSEEvent("response.failed", _encode(payload).decode())]
