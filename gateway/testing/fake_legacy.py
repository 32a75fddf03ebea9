"""The fake upstream's ``/embeddings`` and legacy ``/completions`` answers (OpenAI shapes).

Embeddings are deterministic (derived from each input's SHA-256), ``dimensions`` long (default 8), as
floats or, when asked (the openai SDK asks by default), as base64 little-endian float32.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from typing import Any

from gateway.testing.fake_replies import Reply, _encode, _rand, estimate_input_tokens, split_pieces

JSON = dict[str, Any]
DIMENSIONS = 8


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    return [v if isinstance(v, str) else " ".join(map(str, v)) for v in value or []]


def _vector(text: str, n: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest() * (n // 32 + 1)
    return [round(b / 255 - 0.5, 4) for b in digest[:n]]


def embeddings(reply: Reply, body: JSON) -> JSON:
    texts = _inputs(body.get("input"))
    asked = body.get("dimensions")
    n = asked if isinstance(asked, int) else DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vector = _vector(text, n)
        value: Any = base64.b64encode(struct.pack(f"<{n}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = reply.usage[0] if reply.usage else sum(len(t) // 4 + 1 for t in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": reply.model or body.get("model"), "usage": usage}


def _completion_base(reply: Reply, body: JSON) -> JSON:
    return {
        "id": f"cmpl-{_rand()}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": reply.model or body.get("model"),
    }


def _usage(reply: Reply, body: JSON, text: str) -> JSON:
    inp, out = reply.usage or (estimate_input_tokens({"messages": body.get("prompt")}), max(1, len(text) // 4))
    return {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}


def _text(reply: Reply, body: JSON) -> str:
    prompt = body.get("prompt")
    return reply.text if reply.text is not None else f"echo: {prompt if isinstance(prompt, str) else ''}"


def text_completion(reply: Reply, body: JSON) -> JSON:
    text = _text(reply, body)
    choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": reply.finish_reason or "stop"}
    return {**_completion_base(reply, body), "choices": [choice], "usage": _usage(reply, body, text)}


def text_completion_stream(reply: Reply, body: JSON) -> list[bytes]:
    text = _text(reply, body)
    base = _completion_base(reply, body)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(piece: str, finish: str | None = None) -> bytes:
        obj = {**base, "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}]}
        return b"data: " + _encode(obj) + b"\n\n"

    events = [chunk(piece) for piece in split_pieces(text, max(1, reply.chunks))]
    events.append(chunk("", reply.finish_reason or "stop"))
    if include_usage:
        events.append(b"data: " + _encode({**base, "choices": [], "usage": _usage(reply, body, text)}) + b"\n\n")
    return [*events, b"data: [DONE]\n\n"]


def no_stream(reply: Reply, body: JSON) -> list[bytes]:
    raise ValueError("embeddings are never streamed")
