"""CPU of the Responses door's conversion to a Chat Completions upstream, in-process (no network).

Each request is planned and its reply converted, the reply streamed (16 text chunks, a finish, usage,
``[DONE]``, one network chunk each, through the relay's own chunk loop and its fast lanes) or as one
JSON reply. Two requests:

- ``codex``: Codex-sized (64 items, long instructions);
- ``short``: ``bench/run.py``'s body (one short input), also through the Chat door, which passes a
  Chat upstream's bytes through: the floor the Responses door is compared with.

Prints the best and median of 9 rounds of 200 (CPU µs per request).

    .venv/bin/python bench/convert.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import msgspec

from gateway.domain import Dialect, Route, Upstream
from gateway.plans import make_plan
from gateway.protocols.sse import SSEDecoder, encode_event
from gateway.stream_reading import encode_all, take_chunk

UPSTREAM = Upstream(id="u1", name="chat", tenant_id="t1", dialect=Dialect.OPENAI, base_url="http://up/v1")
ROUTE = Route(public_name="my-gpt", model_id="m1", upstream=UPSTREAM, upstream_model="gpt-up")


def codex_body(stream: bool) -> dict[str, object]:
    items: list[dict[str, object]] = []
    for i in range(32):
        ask = f"Please look at file {i} and explain the code in detail. " * 20
        items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": ask}]})
        answer = "Here is an explanation of the code. " * 30
        items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": answer}]})
    return {"model": "my-gpt", "input": items, "stream": stream, "instructions": "You are Codex. " * 100}


def short_body(stream: bool) -> dict[str, object]:
    return {"model": "my-gpt", "input": "Say something short.", "stream": stream, "store": False}


def chat_body(stream: bool) -> dict[str, object]:
    return {"model": "my-gpt", "messages": [{"role": "user", "content": "Say something short."}], "stream": stream}


def _chunk(delta: dict[str, object] | None, **extra: object) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": extra.pop("finish", None)}]
    doc = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up", "choices": choices, **extra}
    return encode_event(msgspec.json.encode(doc))


CHUNKS = [_chunk({"role": "assistant", "content": ""}), *(_chunk({"content": "word "}) for _ in range(16))]
CHUNKS += [
    _chunk({}, finish="stop"),
    _chunk(None, usage={"prompt_tokens": 9000, "completion_tokens": 16, "total_tokens": 9016}),
    b"data: [DONE]\n\n",
]
REPLY = msgspec.json.encode(
    {
        "id": "c",
        "object": "chat.completion",
        "model": "gpt-up",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 16}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9000, "completion_tokens": 16, "total_tokens": 9016},
    }
)


def streamed(door: Dialect, body: Callable[[bool], dict[str, object]]) -> Callable[[], None]:
    def run() -> None:
        tap = make_plan(door, ROUTE, body(True), {}, ()).make_tap()
        decoder, lane = SSEDecoder(), getattr(tap, "pass_raw", None)
        for chunk in CHUNKS:
            take_chunk(chunk, decoder, tap, lane)
        encode_all(tap.finish())

    return run


def answered(door: Dialect, body: Callable[[bool], dict[str, object]]) -> Callable[[], None]:
    return lambda: make_plan(door, ROUTE, body(False), {}, ()).answer_json(REPLY) and None


def measure(fn: Callable[[], None], rounds: int = 9, n: int = 200) -> tuple[float, float]:
    for _ in range(20):
        fn()
    per_call = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            fn()
        per_call.append((time.process_time() - started) / n * 1e6)
    return min(per_call), statistics.median(per_call)


CASES = {
    "responses door, codex request, stream": streamed(Dialect.RESPONSES, codex_body),
    "responses door, codex request, json": answered(Dialect.RESPONSES, codex_body),
    "responses door, short request, stream": streamed(Dialect.RESPONSES, short_body),
    "responses door, short request, json": answered(Dialect.RESPONSES, short_body),
    "chat door (passthrough), short, stream": streamed(Dialect.OPENAI, chat_body),
    "chat door (passthrough), short, json": answered(Dialect.OPENAI, chat_body),
}

if __name__ == "__main__":
    for name, fn in CASES.items():
        best, median = measure(fn)
        print(f"{name:40}: {best:8.1f} µs best, {median:8.1f} µs median (CPU, in-process)")
