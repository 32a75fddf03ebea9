"""Test connection: a short real probe of one upstream model, in the upstream's own dialect.

Requests, one at a time, each bounded by ``timeout_s`` (scripted fakes must queue replies in
this order):

1. completion — non-streaming "Reply with the single word: pong";
   1b. OpenAI only, when 1 got a 400 naming ``max_completion_tokens``: once more with that field;
2. streaming — the same with ``stream: true`` (OpenAI: plus ``stream_options.include_usage``);
   2b. OpenAI only, when 2 got a 400: once more without ``stream_options``;
3. tools — ``get_weather(city)`` with ``tool_choice`` forcing it, non-streaming;
4. images — a 1x1 red PNG, non-streaming;
5. responses — OpenAI only: ``POST …/responses`` with the same prompt; a Response back means the
   upstream serves the Responses API itself (``supports_responses``: the Responses door passes
   through), a 400/404/405 that it does not.

Reasoning sends nothing: the OpenAI replies of 1-2 are inspected for ``reasoning_content``
(DeepSeek/Qwen), ``reasoning`` (OpenRouter), ``<think>`` tags or reported reasoning tokens;
Anthropic upstreams think natively. A connection failure, timeout or 401/403/404 on the
completion skips the rest. Details never carry the upstream key or an HTML page.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import aiohttp
import msgspec

from gateway.domain import Dialect, Upstream
from gateway.errors import UpstreamError
from gateway.protocols.sse import SSEDecoder, SSEError
from gateway.upstreams.client import Timeouts, UpstreamRequest, read_body, send
from gateway.upstreams.headers import endpoint_url, upstream_headers

__all__ = ["CheckResult", "ProbeResult", "probe"]

CHECKS = ("completion", "streaming", "stream_usage", "tools", "images", "reasoning", "responses")
PROMPT = "Reply with the single word: pong"
IMAGE_PROMPT = "What color is this pixel? One word."
TOOL_PROMPT = "What is the weather in Paris? Use the get_weather tool."
TOOL_DESC = "Current weather of a city."
RED_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
BODY_LIMIT = 1024 * 1024
DETAIL_MAX = 200
STOP_STATUSES = (401, 403, 404)
CAPABILITIES = (("tools", "tools"), ("images", "vision"), ("reasoning", "reasoning"), ("streaming", "streaming"))


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: int | None
    detail: str


@dataclass(frozen=True)
class ProbeResult:
    checks: tuple[CheckResult, ...]
    profile: dict[str, Any]
    capabilities: list[str]
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checks": [asdict(c) for c in self.checks]}


@dataclass
class Answer:
    """What one successful reply said, in either dialect."""

    text: str = ""
    reasoning_field: str | None = None  # "reasoning_content" | "reasoning" | "thinking"
    reasoning_tokens: int = 0
    usage: bool = False
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments JSON)
    error: str | None = None


def request_body(
    dialect: Dialect, kind: str, model: str, *, stream_options: bool = True, max_tokens_field: str = "max_tokens"
) -> dict[str, Any]:
    """The body of check ``kind`` ("completion", "streaming", "tools" or "images")."""
    anthropic = dialect is Dialect.ANTHROPIC
    content: Any = TOOL_PROMPT if kind == "tools" else PROMPT
    if kind == "images":
        source = {"type": "base64", "media_type": "image/png", "data": RED_PIXEL_PNG}
        data_url = {"url": "data:image/png;base64," + RED_PIXEL_PNG}
        image = {"type": "image", "source": source} if anthropic else {"type": "image_url", "image_url": data_url}
        content = [{"type": "text", "text": IMAGE_PROMPT}, image]
    messages = [{"role": "user", "content": content}]
    body: dict[str, Any] = {"model": model, max_tokens_field: 64 if kind == "tools" else 32, "messages": messages}
    if kind == "streaming":
        body["stream"] = True
        if not anthropic and stream_options:
            body["stream_options"] = {"include_usage": True}
    elif kind == "tools" and anthropic:
        body["tools"] = [{"name": "get_weather", "description": TOOL_DESC, "input_schema": WEATHER_SCHEMA}]
        body["tool_choice"] = {"type": "tool", "name": "get_weather"}
    elif kind == "tools":
        fn = {"name": "get_weather", "description": TOOL_DESC, "parameters": WEATHER_SCHEMA}
        body["tools"] = [{"type": "function", "function": fn}]
        body["tool_choice"] = {"type": "function", "function": {"name": "get_weather"}}
    return body


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first_choice(doc: dict[str, Any], key: str) -> dict[str, Any]:
    choices = doc.get("choices")
    return _dict(_dict(choices[0]).get(key)) if isinstance(choices, list) and choices else {}


def parse_reply(dialect: Dialect, doc: Any) -> Answer:
    """A non-streaming reply body (decoded JSON)."""
    doc = _dict(doc)
    out = Answer(usage=isinstance(doc.get("usage"), dict))
    if dialect is Dialect.ANTHROPIC:
        for block in map(_dict, doc.get("content") or []):
            if block.get("type") == "text":
                out.text += str(block.get("text") or "")
            elif block.get("type") == "thinking":
                out.reasoning_field = "thinking"
            elif block.get("type") == "tool_use":
                out.tool_calls.append((str(block.get("name")), msgspec.json.encode(block.get("input")).decode()))
        if not doc.get("content"):
            out.error = "reply has no content"
        return out
    message = _first_choice(doc, "message")
    if not message:
        out.error = "reply has no message"
    _openai_delta(out, message)
    for call in map(_dict, message.get("tool_calls") or []):
        fn = _dict(call.get("function"))
        out.tool_calls.append((str(fn.get("name")), str(fn.get("arguments") or "")))
    _openai_usage(out, doc.get("usage"))
    return out


def parse_stream(dialect: Dialect, raw: bytes) -> Answer:
    """A whole event stream: its text, reasoning fields, usage and any error event."""
    out, decoder = Answer(), SSEDecoder()
    try:
        events = decoder.feed(raw) + decoder.finish()
    except SSEError as exc:
        return Answer(error=str(exc))
    for ev in events:
        try:
            doc = _dict(msgspec.json.decode(ev.data))
        except msgspec.DecodeError:  # "[DONE]" and keep-alive noise
            continue
        if doc.get("type") == "error" or doc.get("error"):
            err = doc.get("error")
            out.error = " ".join(str(_dict(err).get("message") or err).split())[:DETAIL_MAX]
        elif dialect is Dialect.ANTHROPIC:
            delta = _dict(doc.get("delta"))
            out.text += str(delta.get("text") or "") if delta.get("type") == "text_delta" else ""
            if delta.get("type") == "thinking_delta":
                out.reasoning_field = "thinking"
            out.usage |= doc.get("type") == "message_delta" and isinstance(doc.get("usage"), dict)
        else:
            _openai_delta(out, _first_choice(doc, "delta"))
            out.usage |= isinstance(doc.get("usage"), dict)
            _openai_usage(out, doc.get("usage"))
    return out


def _openai_delta(out: Answer, part: dict[str, Any]) -> None:
    out.text += str(part.get("content") or "")
    for name in ("reasoning_content", "reasoning"):
        value = part.get(name)
        if isinstance(value, str) and value and out.reasoning_field is None:
            out.reasoning_field = name


def _openai_usage(out: Answer, usage: Any) -> None:
    tokens = _dict(_dict(usage).get("completion_tokens_details")).get("reasoning_tokens")
    if isinstance(tokens, int) and not isinstance(tokens, bool):
        out.reasoning_tokens = max(out.reasoning_tokens, tokens)


def reasoning_profile(answers: list[Answer]) -> tuple[dict[str, Any], str]:
    """Profile keys and a detail from the reasoning seen in OpenAI-dialect replies."""
    fields = {a.reasoning_field for a in answers}
    if "reasoning_content" in fields:
        return {"reasoning_dialect": "deepseek"}, "reasoning_content field (DeepSeek/Qwen style)"
    if "reasoning" in fields:
        return {"reasoning_dialect": "openrouter"}, "reasoning field (OpenRouter style)"
    if any("<think>" in a.text for a in answers):
        return {"think_tags": True}, "<think> tags inside the content"
    if any(a.reasoning_tokens > 0 for a in answers):
        return {"reasoning_dialect": "openai"}, "reasoning tokens reported (OpenAI style)"
    return {}, "no reasoning output seen"


def error_detail(status: int, body: bytes, content_type: str) -> str:
    """``HTTP 401: <upstream message>``, trimmed; an HTML page is only named, never quoted."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        message: Any = body[:4096].decode("utf-8", errors="replace")
    else:
        err = _dict(doc).get("error")
        message = _dict(err).get("message") if isinstance(err, dict) else err or _dict(doc).get("message")
        message = message or _dict(doc).get("detail")
    text = " ".join(str(message or "").split())
    low = text.lower()
    if "html" in content_type.lower() or low.startswith("<") or any(t in low for t in ("<html", "<!doctype", "<body")):
        return f"HTTP {status} (HTML page)"
    return f"HTTP {status}: {text[:DETAIL_MAX]}" if text else f"HTTP {status}"


def scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


def _safe_json(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None


def _is_json_object(raw: str) -> bool:
    try:
        return isinstance(msgspec.json.decode(raw), dict)
    except msgspec.DecodeError:
        return False


@dataclass(frozen=True)
class _Exchange:
    status: int  # 0: no response (``failure`` says why)
    body: bytes = b""
    content_type: str = ""
    latency_ms: int = 0
    failure: str | None = None

    def failed(self, name: str) -> CheckResult:
        detail = self.failure or error_detail(self.status, self.body, self.content_type)
        return CheckResult(name, False, self.latency_ms if self.status else None, detail)

    def answer(self, dialect: Dialect) -> Answer:
        try:
            return parse_reply(dialect, msgspec.json.decode(self.body))
        except msgspec.DecodeError:
            return Answer(error="reply is not JSON")


async def _exchange(
    session: aiohttp.ClientSession, upstream: Upstream, body: dict[str, Any], timeout_s: float, endpoint: str = ""
) -> _Exchange:
    endpoint = endpoint or ("messages" if upstream.dialect is Dialect.ANTHROPIC else "chat")
    req = UpstreamRequest(endpoint_url(upstream, endpoint), upstream_headers(upstream, {}), msgspec.json.encode(body))
    limits = Timeouts(connect_s=timeout_s, first_byte_s=timeout_s, idle_s=timeout_s, total_s=timeout_s)
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            async with await send(session, req, limits) as resp:  # released (closed if unread) on exit
                raw = await read_body(resp, BODY_LIMIT)
        failure = None
    except TimeoutError:
        failure = f"timed out after {timeout_s:g}s"
    except UpstreamError as exc:  # send's connection failures and read_body's size limit
        failure = str(exc)
    except aiohttp.ClientError as exc:
        failure = f"connection failed ({type(exc).__name__})"
    ms = round((time.monotonic() - start) * 1000)
    if failure is not None:
        return _Exchange(0, latency_ms=ms, failure=failure)
    return _Exchange(resp.status, raw, resp.headers.get("content-type", ""), ms)


class _Probe:
    """One run: the checks in request order, each recording its result and the profile keys it learned."""

    def __init__(self, session: aiohttp.ClientSession, upstream: Upstream, model: str, timeout_s: float) -> None:
        self.session, self.upstream, self.model, self.timeout_s = session, upstream, model, timeout_s
        self.d = upstream.dialect
        self.results: dict[str, CheckResult] = {}
        self.profile: dict[str, Any] = {}
        self.seen: list[Answer] = []

    async def send(self, kind: str, **kw: Any) -> _Exchange:
        tokens_field = self.profile.get("max_tokens_field", "max_tokens")
        body = request_body(self.d, kind, self.model, max_tokens_field=tokens_field, **kw)
        return await _exchange(self.session, self.upstream, body, self.timeout_s)

    def put(self, name: str, ok: bool, latency_ms: int | None, detail: str) -> None:
        self.results[name] = CheckResult(name, ok, latency_ms, detail)

    async def completion(self) -> bool:
        """False when the rest is pointless (no connection, or the key/model is refused)."""
        ex = await self.send("completion")
        if self.d is Dialect.OPENAI and ex.status == 400 and b"max_completion_tokens" in ex.body:
            self.profile["max_tokens_field"] = "max_completion_tokens"  # OpenAI's reasoning models
            ex = await self.send("completion")
            if ex.status == 400:
                del self.profile["max_tokens_field"]
        if ex.status != 200:
            self.results["completion"] = ex.failed("completion")
            return ex.status not in (0, *STOP_STATUSES)
        ans = ex.answer(self.d)
        self.seen.append(ans)
        ok = ans.error is None and bool(ans.text.strip() or ans.reasoning_field)
        detail = f"replied {ans.text.strip()[:40]!r}" if ok else ans.error or "empty reply"
        self.put("completion", ok, ex.latency_ms, detail)
        return True

    async def streaming(self) -> None:
        ex = await self.send("streaming")
        retried = self.d is Dialect.OPENAI and ex.status == 400
        if retried:
            ex = await self.send("streaming", stream_options=False)
        if ex.status != 200 or "event-stream" not in ex.content_type:
            ok200 = CheckResult("streaming", False, ex.latency_ms, "not an event stream")
            self.results["streaming"] = ex.failed("streaming") if ex.status != 200 else ok200
            self.put("stream_usage", False, None, "no stream")
            return
        ans = parse_stream(self.d, ex.body)
        self.seen.append(ans)
        ok = ans.error is None and bool(ans.text or ans.reasoning_field)
        self.put("streaming", ok, ex.latency_ms, ans.error or ("text streamed" if ok else "no text in the stream"))
        detail = "usage in the stream" if ans.usage else "no usage in the stream"
        if self.d is Dialect.OPENAI and retried:
            self.profile["supports_stream_options"] = False
            detail += "; stream_options rejected"
        elif self.d is Dialect.OPENAI and ans.usage:
            self.profile["supports_stream_options"] = True
        self.put("stream_usage", ans.usage, None, detail)

    async def tools(self) -> None:
        ex = await self.send("tools")
        if ex.status != 200:
            self.results["tools"] = ex.failed("tools")
            return
        ans = ex.answer(self.d)
        calls = [args for name, args in ans.tool_calls if name == "get_weather"]
        ok = any(_is_json_object(args) for args in calls)
        detail = "called get_weather with JSON arguments" if ok else "bad tool arguments" if calls else "no tool call"
        self.put("tools", ok, ex.latency_ms, ans.error or detail)

    async def images(self) -> None:
        ex = await self.send("images")
        if ex.status == 200:
            self.profile["supports_image_input"] = True
            self.put("images", True, ex.latency_ms, "image accepted")
            return
        if ex.status in (400, 422):
            self.profile["supports_image_input"] = False
        self.results["images"] = ex.failed("images")

    async def responses(self) -> None:
        if self.d is Dialect.ANTHROPIC:
            self.put("responses", False, None, "not applicable: the Responses door converts for Anthropic upstreams")
            return
        body = {"model": self.model, "input": PROMPT, "max_output_tokens": 32}
        ex = await _exchange(self.session, self.upstream, body, self.timeout_s, "responses")
        if ex.status == 200 and isinstance(_dict(_safe_json(ex.body)).get("output"), list):
            self.profile["supports_responses"] = True
            self.put("responses", True, ex.latency_ms, "serves the Responses API: the Responses door passes through")
            return
        if ex.status in (400, 404, 405) or ex.status == 200:
            self.profile["supports_responses"] = False
            self.put("responses", False, ex.latency_ms, "no Responses API: the Responses door converts to chat")
            return
        self.results["responses"] = ex.failed("responses")

    def reasoning(self) -> None:
        if self.d is Dialect.ANTHROPIC:
            self.put("reasoning", True, None, "native thinking")
            return
        keys, detail = reasoning_profile(self.seen)
        self.profile.update(keys)
        self.put("reasoning", bool(keys), None, detail)

    def result(self) -> ProbeResult:
        """Every check in order (absent ones "skipped"), every detail scrubbed of the upstream key."""
        found = [self.results.get(n) or CheckResult(n, False, None, "skipped") for n in CHECKS]
        checks = tuple(replace(c, detail=scrub(c.detail, self.upstream.api_key)) for c in found)
        passed = {c.name for c in checks if c.ok}
        capabilities = [cap for check, cap in CAPABILITIES if check in passed]
        return ProbeResult(checks, self.profile, capabilities, "completion" in passed)


async def probe(
    session: aiohttp.ClientSession, upstream: Upstream, upstream_model: str, *, timeout_s: float = 20.0
) -> ProbeResult:
    """Run the checks (request order: see the module docstring) and learn capability-profile keys.

    ``session`` must be the SSRF-guarded one for a tenant's upstream.
    """
    run = _Probe(session, upstream, upstream_model, timeout_s)
    if await run.completion():
        await run.streaming()
        await run.tools()
        await run.images()
        run.reasoning()
        await run.responses()
    return run.result()
