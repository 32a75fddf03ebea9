"""How one call talks to its upstream: the request to send and how the answer comes back to the door.

Pure: no I/O. Same dialect → passthrough (the client's body with the model changed and, for
Anthropic, the history sanitised losslessly). Other dialect → ``gateway.convert``. Either way the
result is a ``Plan`` with the same four parts, so ``gateway.relay`` has one code path.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from gateway.convert import (
    AnthropicStreamToOpenAI,
    AnthropicStreamToResponses,
    CapabilityProfile,
    Chained,
    Converted,
    OpenAIStreamToAnthropic,
    anthropic_error_to_openai,
    anthropic_reply_to_openai,
    anthropic_reply_to_responses,
    anthropic_request_to_openai,
    enable_thinking,
    envelope,
    error_should_retry,
    openai_error_to_anthropic,
    openai_reply_to_anthropic,
    openai_reply_to_responses,
    openai_request_to_anthropic,
    responses_for_anthropic,
    responses_for_openai,
    responses_request_to_anthropic,
    sanitize_anthropic_body,
    usage_from_anthropic,
    usage_from_openai,
)
from gateway.convert.a2o_messages import render_messages
from gateway.convert.a2o_websearch import WebSearchSpec
from gateway.convert.a_accumulate import accumulate_message
from gateway.convert.ids import shorten_tool_name
from gateway.convert.types import ResponseHints, StreamTap
from gateway.convert.usage import usage_from_responses
from gateway.domain import Dialect, Route, Usage
from gateway.errors import InvalidRequest, UpstreamError
from gateway.passthrough import (
    AnthropicPassthrough,
    OpenAIPassthrough,
    ResponsesPassthrough,
    rename_model_in_body,
)
from gateway.protocols.sse import SSEEvent
from gateway.tokencount import count_anthropic_request
from gateway.upstreams.client import UpstreamRequest
from gateway.upstreams.errors import upstream_error
from gateway.upstreams.headers import endpoint_url, forwarded_response_headers, upstream_headers

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
THINKING_BUDGET = 10_000
"""Budget of extended thinking turned on by a ``-thinking`` model name."""


ErrorMaker = Callable[[int, bytes, Mapping[str, str]], UpstreamError]


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """An Anthropic-door request whose ``web_search`` server tool Relay runs itself (``gateway.websearch``)."""

    spec: WebSearchSpec
    body: dict[str, Any]
    """The converted OpenAI request (the ``web_search`` function offered)."""
    hints: ResponseHints
    model: str
    """The public model name the client asked for."""
    render: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    """Anthropic blocks of the assistant turn so far → the OpenAI messages continuing the request."""


@dataclass(frozen=True, slots=True)
class Plan:
    request: UpstreamRequest
    make_tap: Callable[[], StreamTap]
    answer_json: Callable[[bytes], tuple[bytes, Usage]]
    error: ErrorMaker
    notes: tuple[str, ...] = ()
    kept: Callable[[], dict[str, Any] | None] | None = None
    """The final reply once answered (a Response, or an Anthropic message of a held thread), for the store."""
    search: SearchPlan | None = None
    """Set when Relay runs the request's web searches: the relay hands the call to ``gateway.websearch``."""


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def converts(door: Dialect, route: Route) -> bool:
    """Whether ``make_plan`` converts the request (a passthrough sends the client's fields as they are)."""
    if door is Dialect.RESPONSES:
        return not (route.dialect is Dialect.OPENAI and route.profile.get("supports_responses") is True)
    return door is not route.dialect


def make_plan(
    door: Dialect,
    route: Route,
    body: dict[str, Any],
    client_headers: Mapping[str, str],
    beta_defaults: tuple[str, ...],
    envelope_key: bytes = b"",
    *,
    keep: bool = False,
    endpoint: str = "chat",
    web_search: bool = False,
) -> Plan:
    """``envelope_key`` authenticates the reasoning a Responses client carries between turns; ``keep``
    records an Anthropic-door reply (a thread Relay holds) for ``Plan.kept``; ``web_search``: Relay has a
    search backend, so an Anthropic-door ``web_search`` server tool to an OpenAI upstream is run by Relay."""
    headers = upstream_headers(route.upstream, client_headers, beta_defaults)
    secret = route.upstream.api_key
    if endpoint != "chat":
        return _openai_endpoint(route, body, endpoint, headers, secret)
    if route.thinking:
        body = enable_thinking(body, dialect=door, budget=THINKING_BUDGET)
    url = endpoint_url(route.upstream, "messages" if route.dialect is Dialect.ANTHROPIC else "chat")
    if door is Dialect.RESPONSES:
        if route.dialect is Dialect.OPENAI and route.profile.get("supports_responses") is True:
            return _responses_passthrough(route, body, endpoint_url(route.upstream, "responses"), headers, secret)
        return _responses(route, body, url, headers, secret, envelope_key)
    if door is route.dialect:
        plan = _passthrough(door, route, body, url, headers, secret)
    else:
        profile = CapabilityProfile.for_dialect(route.dialect, route.profile)
        if door is Dialect.ANTHROPIC:
            plan = _anthropic_to_openai(route, body, url, headers, profile, secret, web_search)
        else:
            plan = _openai_to_anthropic(route, body, url, headers, profile, secret)
    return _recorded(plan) if keep and door is Dialect.ANTHROPIC else plan


class _Recorder:
    """A tap that also keeps every event it sends, to fold the message a held thread stores.

    It has no ``pass_raw``, so the relay decodes every event of a recorded stream.
    """

    def __init__(self, inner: StreamTap) -> None:
        self.inner = inner
        self.events: list[SSEEvent] = []

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    @property
    def finished(self) -> bool:
        return self.inner.finished

    def _kept(self, events: list[SSEEvent]) -> list[SSEEvent]:
        self.events.extend(events)
        return events

    def feed(self, ev: SSEEvent) -> list[SSEEvent]:
        return self._kept(self.inner.feed(ev))

    def finish(self) -> list[SSEEvent]:
        return self._kept(self.inner.finish())

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        return self._kept(self.inner.fail(message, error_type))


def _recorded(plan: Plan) -> Plan:
    """``plan`` whose Anthropic reply, streamed or not, is kept whole for ``Plan.kept``."""
    seen: dict[str, Any] = {}

    def tap() -> StreamTap:
        seen["tap"] = recorder = _Recorder(plan.make_tap())
        return recorder

    def answer(raw: bytes) -> tuple[bytes, Usage]:
        body, usage = plan.answer_json(raw)
        seen["message"] = _decode(body)
        return body, usage

    def kept() -> dict[str, Any] | None:
        if "message" in seen:
            return dict(seen["message"])
        recorder = seen.get("tap")
        if recorder is None or not any(e.event == "message_stop" for e in recorder.events[-3:]):
            return None
        message: dict[str, Any] = accumulate_message(e for e in recorder.events if e.event != "ping")
        return message

    return replace(plan, make_tap=tap, answer_json=answer, kept=kept)


def _openai_endpoint(route: Route, body: dict[str, Any], endpoint: str, headers: dict[str, str], secret: str) -> Plan:
    """``/v1/embeddings`` and legacy ``/v1/completions``: OpenAI-dialect upstreams only, the model renamed.

    An embedding is metered as input tokens at the model's input price (its embedding price)."""
    if route.dialect is not Dialect.OPENAI:
        raise InvalidRequest(
            f"model {route.public_name!r} is served by an Anthropic-dialect upstream, which has no /v1/{endpoint}; "
            "use a model on an OpenAI-dialect upstream",
            param="model",
        )
    return _passthrough(Dialect.OPENAI, route, body, endpoint_url(route.upstream, endpoint), headers, secret)


def _passthrough(
    door: Dialect, route: Route, body: dict[str, Any], url: str, headers: dict[str, str], secret: str
) -> Plan:
    public = route.public_name
    notes: list[str] = []
    if door is Dialect.ANTHROPIC:
        # A continued thread the upstream holds carries only the new turn: its tool results are not orphans.
        thread = body.get("thread")
        continued = isinstance(thread, dict) and thread.get("type") == "continue"
        body, notes = sanitize_anthropic_body(body, pair=not continued)
        body["model"] = route.upstream_model
        _clamp_output(body, route, ("max_tokens",), notes)
        return Plan(
            request=UpstreamRequest(url, headers, _encode(body)),
            make_tap=lambda: AnthropicPassthrough(model=public),
            answer_json=lambda raw: _renamed(raw, public, usage_from_anthropic),
            error=_plain_error(secret),
            notes=tuple(notes),
        )
    body = {**body, "model": route.upstream_model}
    _clamp_output(body, route, ("max_tokens", "max_completion_tokens"), notes)
    wants_usage = client_wants_usage(body)
    if body.get("stream") is True and not wants_usage and route.profile.get("supports_stream_options", True):
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return Plan(
        request=UpstreamRequest(url, headers, _encode(body)),
        make_tap=lambda: OpenAIPassthrough(
            model=public, client_wants_usage=wants_usage, upstream_model=route.upstream_model
        ),
        answer_json=lambda raw: _renamed(raw, public, usage_from_openai),
        error=_plain_error(secret),
        notes=tuple(notes),
    )


def _clamp_output(body: dict[str, Any], route: Route, fields: tuple[str, ...], notes: list[str]) -> None:
    """A passed-through request asking for more output than the model's known limit asks for the limit
    (``max_tokens_clamped``) instead of earning a 400; a thinking budget that would no longer fit under it
    leaves the request as it is."""
    cap = route.profile.get("max_output_tokens")
    if not isinstance(cap, int) or cap <= 0:
        return
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if isinstance(budget, int) and budget >= cap:
        return
    for name in fields:
        asked = body.get(name)
        if isinstance(asked, int) and asked > cap:
            body[name] = cap
            if "max_tokens_clamped" not in notes:
                notes.append("max_tokens_clamped")


def _anthropic_to_openai(
    route: Route,
    body: dict[str, Any],
    url: str,
    headers: dict[str, str],
    profile: CapabilityProfile,
    secret: str,
    web_search: bool = False,
) -> Plan:
    converted = anthropic_request_to_openai(
        body, upstream_model=route.upstream_model, profile=profile, web_search=web_search
    )
    hints = converted.hints
    public = route.public_name
    hint = count_anthropic_request(body) if body.get("stream") is True else 0

    def answer(raw: bytes) -> tuple[bytes, Usage]:
        doc = _object(raw)
        out = openai_reply_to_anthropic(doc, model=public, new_id=new_id, hints=hints)
        return _encode(out), usage_from_openai(doc.get("usage"))

    return Plan(
        request=UpstreamRequest(url, headers, _encode(converted.body)),
        make_tap=lambda: OpenAIStreamToAnthropic(model=public, new_id=new_id, input_tokens_hint=hint, hints=hints),
        answer_json=answer,
        error=_converted_error(openai_error_to_anthropic, secret),
        notes=converted.notes,
        search=None if converted.web_search is None else _search_plan(converted, public, profile),
    )


def _search_plan(converted: Converted, public: str, profile: CapabilityProfile) -> SearchPlan:
    def render(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        turn = [{"role": "assistant", "content": blocks}]
        return render_messages(turn, profile, shorten_tool_name, [], search_function=True)

    assert converted.web_search is not None
    return SearchPlan(converted.web_search, converted.body, converted.hints, public, render)


def _openai_to_anthropic(
    route: Route, body: dict[str, Any], url: str, headers: dict[str, str], profile: CapabilityProfile, secret: str
) -> Plan:
    converted = openai_request_to_anthropic(body, upstream_model=route.upstream_model, profile=profile)
    hints = converted.hints
    public = route.public_name
    wants_usage = client_wants_usage(body)
    created = int(time.time())

    def answer(raw: bytes) -> tuple[bytes, Usage]:
        doc = _object(raw)
        out = anthropic_reply_to_openai(doc, model=public, new_id=new_id, created=created, hints=hints)
        return _encode(out), usage_from_anthropic(doc.get("usage"))

    return Plan(
        request=UpstreamRequest(url, headers, _encode(converted.body)),
        make_tap=lambda: AnthropicStreamToOpenAI(
            model=public, new_id=new_id, created=created, include_usage=wants_usage, hints=hints
        ),
        answer_json=answer,
        error=_converted_error(anthropic_error_to_openai, secret),
        notes=converted.notes,
    )


def _responses(route: Route, body: dict[str, Any], url: str, headers: dict[str, str], secret: str, key: bytes) -> Plan:
    """The Responses door, converted through the Anthropic form (``gateway.convert.requests_r2a``)."""
    neutral = responses_request_to_anthropic(body, carry=lambda token: envelope.unseal(key, token))
    profile = CapabilityProfile.for_dialect(route.dialect, route.profile)
    anthropic = route.dialect is Dialect.ANTHROPIC
    finish = responses_for_anthropic if anthropic else responses_for_openai
    converted = finish(neutral, upstream_model=route.upstream_model, profile=profile)
    hints = converted.hints
    response_id = new_id("resp_")
    created = int(time.time())
    last: list[AnthropicStreamToResponses] = []

    def writer(encode: bool = True) -> AnthropicStreamToResponses:
        last[:] = [
            AnthropicStreamToResponses(
                model=route.public_name,
                response_id=response_id,
                new_id=new_id,
                created=created,
                shape=neutral,
                seal=lambda carry: envelope.seal(key, carry),
                json_tool=hints.json_tool,
                encode=encode,
            )
        ]
        return last[0]

    def answer(raw: bytes) -> tuple[bytes, Usage]:
        doc = _object(raw)
        if anthropic:
            out = anthropic_reply_to_responses(doc, writer(encode=False))
            return _encode(out), usage_from_anthropic(doc.get("usage"))
        out = openai_reply_to_responses(doc, writer(encode=False), new_id=new_id, hints=hints)
        return _encode(out), usage_from_openai(doc.get("usage"))

    def tap() -> StreamTap:
        if anthropic:
            return writer()
        first = OpenAIStreamToAnthropic(
            model=route.public_name,
            new_id=new_id,
            input_tokens_hint=lambda: count_anthropic_request(neutral.body),  # only if the upstream reports none
            hints=hints,
            encode=False,
        )
        return Chained(first, writer())

    return Plan(
        request=UpstreamRequest(url, headers, _encode(converted.body)),
        make_tap=tap,
        answer_json=answer,
        error=_converted_error(anthropic_error_to_openai, secret) if anthropic else _plain_error(secret),
        notes=converted.notes,
        kept=lambda: last[0].kept_response if last else None,
    )


def _responses_passthrough(route: Route, body: dict[str, Any], url: str, headers: dict[str, str], secret: str) -> Plan:
    """A Responses-native upstream: the client's body with the model renamed and its history expanded."""
    previous = body.get("previous_response_id")
    sent = {k: v for k, v in body.items() if k != "previous_response_id"}
    sent["model"] = route.upstream_model
    response_id = new_id("resp_")
    last: list[ResponsesPassthrough] = []

    def tap() -> ResponsesPassthrough:
        last[:] = [
            ResponsesPassthrough(model=route.public_name, response_id=response_id, previous_response_id=previous)
        ]
        return last[0]

    def answer(raw: bytes) -> tuple[bytes, Usage]:
        doc = tap().rename(_object(raw))
        last[0].response = doc
        return _encode(doc), usage_from_responses(doc.get("usage"))

    return Plan(
        request=UpstreamRequest(url, headers, _encode(sent)),
        make_tap=tap,
        answer_json=answer,
        error=_plain_error(secret),
        kept=lambda: last[0].kept_response if last else None,
    )


def _plain_error(secret: str) -> ErrorMaker:
    return lambda status, raw, h: upstream_error(status, raw, h, secret=secret)


def _converted_error(convert: Callable[[int, bytes], tuple[int, dict[str, Any]]], secret: str) -> ErrorMaker:
    def make(status: int, raw: bytes, headers: Mapping[str, str]) -> UpstreamError:
        new_status, envelope = convert(status, raw)
        err = envelope.get("error") or {}
        message = str(err.get("message") or f"upstream returned HTTP {status}")
        if secret and len(secret) >= 4:
            message = message.replace(secret, "***")
            err = {**err, "message": message}
        error = UpstreamError(
            message,
            status_code=new_status,
            error_type=err.get("type"),
            headers=forwarded_response_headers(headers, secret=secret),
        )
        error.envelope = {**envelope, "error": err}
        error.should_retry = error_should_retry(new_status, envelope)
        return error

    return make


def client_wants_usage(body: Mapping[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


def _object(raw: bytes) -> dict[str, Any]:
    doc = _decode(raw)
    if not isinstance(doc, dict):
        raise ValueError("response is not a JSON object")
    return doc


def _renamed(raw: bytes, model: str, read_usage: Callable[[Any], Usage]) -> tuple[bytes, Usage]:
    body, doc = rename_model_in_body(raw, model)
    return body, read_usage(doc.get("usage"))
