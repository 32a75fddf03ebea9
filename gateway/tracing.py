"""OpenTelemetry traces of relayed requests, with the GenAI semantic conventions; off unless configured.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, through the
standard variables the SDK and exporter read themselves (``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_RESOURCE_ATTRIBUTES``, …); ``OTEL_SERVICE_NAME`` defaults to ``relay``.
Spans go out over OTLP/HTTP (protobuf) in batches, from the SDK's own thread.

Off, this module imports nothing of OpenTelemetry and the relay's only work is ``begin`` returning None
(``bench/tracing.py`` measures it). On, each request is:

- one **request span**, kind SERVER (the gateway serving its client; the client's own CLIENT span, when it
  sends ``traceparent``, is its parent), named ``{gen_ai.operation.name} {gen_ai.request.model}``:
  ``gen_ai.operation.name``, ``gen_ai.provider.name`` (and the older ``gen_ai.system``: many backends still
  group by it), ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` (cached
  input included, as the conventions ask) / ``output_tokens`` / ``cache_read.input_tokens`` /
  ``cache_creation.input_tokens``, ``http.response.status_code``, ``error.type`` on failure, and
  ``relay.request_id``, ``relay.tenant_id``, ``relay.key_id``, ``relay.door``, ``relay.attempts``,
  ``relay.served_model`` (after a fallback), ``relay.cost_micro_usd``, ``relay.usage_estimated``;
- one **attempt span** per upstream call (a key move, a retry, a fallback, a clamped retry: each its own),
  kind CLIENT, child of the request span, named ``{operation} {upstream model id}``, with the provider, the
  upstream model, ``server.address``/``server.port``, ``relay.upstream``, ``relay.upstream_key_id`` and
  ``relay.attempt``; the upstream receives its W3C ``traceparent``. The attempt that answers ends with
  the request (a stream's span covers the stream).

The request span ends exactly once: in ``finish`` (the relay's one ledger row, whatever the path: JSON,
stream, error, a client gone mid-stream) or ``abandon`` (the call raised before any row was written).
Only ``traceparent``/``tracestate`` cross to upstreams: a client's baggage is not forwarded to providers.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

    from gateway.calls import Call
    from gateway.domain import Route
    from gateway.metering import UsageRecord

log = logging.getLogger("relay")
DEFAULT_SERVICE_NAME = "relay"
_OPERATIONS = {"chat": "chat", "embeddings": "embeddings", "completions": "text_completion"}
_MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


class _Kit:
    """The OpenTelemetry parts a traced request uses, imported once when tracing starts."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("relay")
        self.server = SpanKind.SERVER
        self.client = SpanKind.CLIENT
        self.error = Status(StatusCode.ERROR)
        self.in_context = set_span_in_context
        self.propagator = TraceContextTextMapPropagator()


_kit: _Kit | None = None


def enabled() -> bool:
    return _kit is not None


def begin(call: Call) -> RequestTrace | None:
    """The request span of ``call``, or None when tracing is off (the relay's only cost then)."""
    kit = _kit
    if kit is None:
        return None
    return RequestTrace(kit, call)


def configured(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard variables ask for traces: an OTLP endpoint, and the SDK not disabled."""
    if not (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return False
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none"


def start(env: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Turn tracing on in this process when the standard variables ask for it (each worker, at start-up).

    Returns the provider to hand to ``stop`` at shutdown, or None when tracing stays off. A missing
    ``[otel]`` extra is logged as an error, not fatal: the gateway serves untraced.
    """
    if not configured(env):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.error("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s): "
                  "pip install 'relay-gateway[otel]'; tracing stays off", exc.name)  # fmt: skip
        return None
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol.strip() != "http/protobuf":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s: Relay exports over http/protobuf only", protocol)
    service = env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    log.info("tracing on: OTLP/HTTP to %s as service %s", _endpoint(env), service)
    return provider


def install(provider: TracerProvider | None) -> None:
    """Trace requests into ``provider``, or stop tracing with None (``start`` installs; the benchmark switches)."""
    global _kit
    _kit = None if provider is None else _Kit(provider)


def stop(provider: TracerProvider | None) -> None:
    """Flush and shut down what ``start`` began (blocking: the last batch is sent; run it off the loop)."""
    global _kit
    if provider is None:
        return
    if _kit is not None and _kit.provider is provider:
        _kit = None
    provider.shutdown()


class RequestTrace:
    """One request's span and its current attempt's span; shared by the request's attempts (``Call.trace``)."""

    __slots__ = ("_attempt", "_attempts", "_kit", "_operation", "_span")

    def __init__(self, kit: _Kit, call: Call) -> None:
        self._kit = kit
        self._attempt: Span | None = None
        self._attempts = 0
        self._operation = _OPERATIONS.get(call.endpoint, "chat")
        asked = call.body.get("model")
        model = asked if isinstance(asked, str) and asked else call.route.public_name
        provider = _provider(call.route)
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": self._operation,
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.request.model": model,
            "relay.request_id": call.request_id,
            "relay.tenant_id": call.principal.tenant_id,
            "relay.key_id": call.principal.key_id,
            "relay.door": call.door.value,
            "relay.stream": call.stream,
        }
        for name in _MAX_TOKENS_FIELDS:
            value = call.body.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                attrs["gen_ai.request.max_tokens"] = value
                break
        parent = kit.propagator.extract(call.headers) if "traceparent" in call.headers else None
        # The request began at the door (auth and routing included), before the relay saw it.
        started_ns = time.time_ns() - int((time.monotonic() - call.started) * 1e9)
        self._span: Span | None = kit.tracer.start_span(
            f"{self._operation} {model}", parent, kit.server, attrs, start_time=started_ns
        )

    @property
    def span(self) -> Span | None:
        """The request span until it ends (then None)."""
        return self._span

    def attempt(self, route: Route, headers: dict[str, str], tries: list[tuple[str, int, str | None]]) -> None:
        """An upstream call begins: its CLIENT span, and its ``traceparent`` in the upstream ``headers``.

        A previous attempt still open was refused without an exception (a clamped retry): it ends with the
        last of ``tries``.
        """
        request = self._span
        if request is None:
            return
        if self._attempt is not None:
            _, status, code = tries[-1] if tries else ("", 0, None)
            self._end_attempt(status or None, code or "superseded")
        self._attempts += 1
        kit = self._kit
        provider = _provider(route)
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": self._operation,
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.request.model": route.upstream_model,
            "relay.upstream": route.upstream.name,
            "relay.model": route.public_name,
            "relay.attempt": self._attempts,
        }
        if route.upstream.key_id:
            attrs["relay.upstream_key_id"] = route.upstream.key_id
        url = urlsplit(route.upstream.base_url)
        if url.hostname:
            attrs["server.address"] = url.hostname
            attrs["server.port"] = url.port or (443 if url.scheme == "https" else 80)
        context = kit.in_context(request)
        span = kit.tracer.start_span(f"{self._operation} {route.upstream_model}", context, kit.client, attrs)
        self._attempt = span
        kit.propagator.inject(headers, kit.in_context(span))

    def attempt_failed(self, status: int, code: str | None) -> None:
        """The current attempt failed before the first byte (the relay may retry or fall back)."""
        if self._attempt is not None:
            self._end_attempt(status, code or str(status))

    def finish(self, rec: UsageRecord, route: Route) -> None:
        """The request's one ledger row: its usage and outcome go on the spans, which end (once)."""
        span = self._span
        if span is None:
            return
        self._span = None
        usage = rec.usage
        status = rec.status
        provider = _provider(route)
        attrs: dict[str, AttributeValue] = {
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.response.model": route.upstream_model,
            "gen_ai.usage.input_tokens": usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "http.response.status_code": status,
            "relay.attempts": rec.attempts,
            "relay.cost_micro_usd": rec.cost_micro_usd,
        }
        if usage.cache_read_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
        if usage.cache_write_tokens:
            attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
        if usage.estimated:
            attrs["relay.usage_estimated"] = True
        if rec.served_model:
            attrs["relay.served_model"] = rec.served_model
        error = _error_type(status, rec.error_code)
        if error is not None:
            attrs["error.type"] = error
        span.set_attributes(attrs)
        if self._attempt is not None:
            self._end_attempt(status, error)
        if status >= 500:  # a SERVER span: 4xx are the client's errors, not the gateway's
            span.set_status(self._kit.error)
        span.end()

    def abandon(self, exc: BaseException) -> None:
        """The call raised before writing its row (routing failed, the client left early): end the spans."""
        span = self._span
        if span is None:
            return
        self._span = None
        status = getattr(exc, "status_code", None)
        code = getattr(exc, "code", None)
        error = code if isinstance(code, str) else type(exc).__name__
        if isinstance(status, int):
            span.set_attribute("http.response.status_code", status)
        span.set_attribute("error.type", error)
        if self._attempt is not None:
            self._end_attempt(status if isinstance(status, int) else None, error)
        if not isinstance(status, int) or status >= 500:
            span.set_status(self._kit.error)
        span.end()

    def _end_attempt(self, status: int | None, error: str | None) -> None:
        span, self._attempt = self._attempt, None
        if span is None:
            return
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(self._kit.error)  # a CLIENT span: any failed call is an error
        span.end()


def _provider(route: Route) -> str:
    """``gen_ai.provider.name``: the upstream's dialect is what Relay knows of it (``openai`` also stands for the
    many OpenAI-compatible providers; ``server.address`` and the model names tell them apart)."""
    return route.upstream.dialect.value


def _error_type(status: int, error_code: str | None) -> str | None:
    if error_code:
        return error_code
    if status == 499:
        return "client_closed"
    return str(status) if status >= 400 else None


def _endpoint(env: Mapping[str, str]) -> str:
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    return env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").rstrip("/") + "/v1/traces"
