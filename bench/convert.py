"""CPU of the Responses door's conversion to a Chat Completions upstream, in-process (no network).

One Codex-sized request (64 items, long instructions), planned and its reply converted: streamed (16 text
chunks, usage, ``[DONE]``) and as one JSON reply. Prints the best and median of 5 rounds of 100.

    .venv/bin/python bench/convert.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import msgspec

from gateway.domain import Dialect, Route, Upstream
from gateway.plans import make_plan
from gateway.protocols.sse import SSEEvent

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


def _event(doc: dict[str, object]) -> SSEEvent:
    return SSEEvent(None, msgspec.json.encode(doc).decode())


CHUNKS = [_event({"id": "c", "choices": [{"index": 0, "delta": {"content": "word "}}]}) for _ in range(16)]
CHUNKS += [
    _event({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    _event({"id": "c", "choices": [], "usage": {"prompt_tokens": 9000, "completion_tokens": 16, "total_tokens": 9016}}),
    SSEEvent(None, "[DONE]"),
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


def streamed() -> None:
    tap = make_plan(Dialect.RESPONSES, ROUTE, codex_body(True), {}, ()).make_tap()
    for event in CHUNKS:
        tap.feed(event)
    tap.finish()


def answered() -> None:
    make_plan(Dialect.RESPONSES, ROUTE, codex_body(False), {}, ()).answer_json(REPLY)


def measure(fn: Callable[[], None], rounds: int = 5, n: int = 100) -> tuple[float, float]:
    for _ in range(20):
        fn()
    per_call = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            fn()
        per_call.append((time.process_time() - started) / n * 1000)
    return min(per_call), statistics.median(per_call)


if __name__ == "__main__":
    for name, fn in (("streamed", streamed), ("json", answered)):
        best, median = measure(fn)
        print(f"Codex-sized request, {name:8}: {best:.3f} ms best, {median:.3f} ms median (CPU, in-process)")
