"""OpenTelemetry: a running gateway exports its spans over OTLP/HTTP to a receiver in the test.

The gateway reads the standard ``OTEL_*`` variables at start-up, so the module's gateway is started with
them set (and the environment restored at once); the fake upstream records the ``traceparent`` it got.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import REPO, GatewayServer, Seeder, base_settings, free_port, prepare_database

from gateway import tracing
from gateway.manage import upstream_keys, upstreams
from gateway.testing.fake_upstream import FakeUpstream, Reply

trace_service_pb2 = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2", reason="the [otel] extra is not installed"
)

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.StatusCode


@dataclass
class Span:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attrs: dict[str, Any]
    start_ns: int
    end_ns: int
    status: int
    service: str

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


class Receiver:
    """An OTLP/HTTP trace receiver: POST /v1/traces with protobuf ``ExportTraceServiceRequest`` bodies."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                ok = self.path == "/v1/traces" and self.headers.get("content-type") == "application/x-protobuf"
                if ok:
                    receiver.take(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(200 if ok else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def take(self, body: bytes, headers: dict[str, str]) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        spans = []
        for rs in request.resource_spans:
            service = next((kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"), "")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {kv.key: _value(kv.value) for kv in s.attributes}
                    ids = (s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex())
                    times = (s.start_time_unix_nano, s.end_time_unix_nano)
                    spans.append(Span(s.name, s.kind, *ids, attrs, *times, s.status.code, service))
        with self.lock:
            self.spans.extend(spans)
            self.headers.append(headers)

    def trace(self, request_id: str, *, attempts: int, timeout_s: float = 10.0) -> tuple[Span, list[Span]]:
        """The request span of ``request_id`` and its attempt spans (in order), once all have arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                spans = list(self.spans)
            request = [s for s in spans if s.attrs.get("relay.request_id") == request_id]
            if request:
                children = sorted((s for s in spans if s.parent_id == request[0].span_id), key=lambda s: s.start_ns)
                if len(children) >= attempts:
                    assert len(request) == 1  # ended (and so exported) exactly once
                    return request[0], children
            if time.monotonic() > deadline:
                raise AssertionError(f"no complete trace of {request_id} among {[s.name for s in spans]}")
            time.sleep(0.05)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value"))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def otel_env(receiver: Receiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-token=t0ken",
        "OTEL_SERVICE_NAME": "relay-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


@pytest.fixture(scope="module")
def traced(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """A gateway (SQLite, one retry) started with the OTEL_* variables; the environment is restored after."""
    settings = replace(
        base_settings(f"sqlite:///{tmp_path_factory.mktemp('tracing') / 'relay.db'}", None), upstream_retries=1
    )
    prepare_database(settings)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in otel_env(receiver).items():
            mp.setenv(name, value)
        server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def seeded(traced: GatewayServer, _fake_upstream: FakeUpstream) -> tuple[Any, str]:
    seed = Seeder(traced.settings)
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=_fake_upstream.url + "/v1", name="fake-openai")
    seed.model(tenant, up, "m", upstream_model="m-id")
    return tenant, seed.key(tenant).secret


def ask(server: GatewayServer, key: str, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50, **extra},
        timeout=30,
    )


def stream(server: GatewayServer, key: str) -> contextlib.AbstractContextManager[httpx.Response]:
    """A streamed Chat request, as ``ask`` sends a plain one."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.stream("POST", server.url + "/v1/chat/completions", headers=headers, json=body, timeout=30)


def traceparent_ids(value: str) -> tuple[str, str]:
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled (the SDK may also set the random-trace-id bit)
    return trace_id, span_id


def test_a_retried_request_is_one_span_with_a_child_per_attempt_and_continues_the_clients_trace(
    traced, seeded, fake, receiver
):
    tenant, key = seeded
    client_trace, client_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    fake.enqueue(Reply(status=503, text="busy"), Reply(text="hello there", usage=(7, 3)))
    r = ask(traced, key, headers={"traceparent": f"00-{client_trace}-{client_span}-01"})
    assert r.status_code == 200
    request, attempts = receiver.trace(r.headers["request-id"], attempts=2)

    assert request.name == "chat m" and request.kind == SERVER and request.service == "relay-under-test"
    assert (request.trace_id, request.parent_id) == (client_trace, client_span)  # the client's trace goes on
    assert request.attrs == request.attrs | {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "m",
        "gen_ai.response.model": "m-id",
        "gen_ai.request.max_tokens": 50,
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.output_tokens": 3,
        "http.response.status_code": 200,
        "relay.tenant_id": tenant.id,
        "relay.attempts": 2,
        "relay.door": "openai",
    }
    assert "error.type" not in request.attrs and request.status != STATUS_ERROR

    assert [(s.name, s.kind, s.trace_id) for s in attempts] == [("chat m-id", CLIENT, client_trace)] * 2
    failed, served = attempts
    assert failed.attrs["relay.attempt"] == 1 and served.attrs["relay.attempt"] == 2
    assert failed.attrs["http.response.status_code"] == 503 and failed.attrs["error.type"] == "upstream_error"
    assert failed.status == STATUS_ERROR
    assert served.attrs["http.response.status_code"] == 200 and "error.type" not in served.attrs
    for span in attempts:
        assert span.attrs["server.address"] == "127.0.0.1" and span.attrs["relay.upstream"] == "fake-openai"
        assert span.attrs["gen_ai.request.model"] == "m-id"
    assert failed.end_ns <= served.start_ns and request.start_ns <= failed.start_ns
    assert served.end_ns <= request.end_ns

    # Each upstream call carried its own attempt's span as the W3C parent, in the request's trace.
    sent = [traceparent_ids(req.headers["traceparent"]) for req in fake.requests]
    assert sent == [(client_trace, failed.span_id), (client_trace, served.span_id)]
    assert all(h.get("x-collector-token") == "t0ken" for h in receiver.headers)  # OTEL_EXPORTER_OTLP_HEADERS


def test_a_stream_span_ends_when_the_stream_ends_with_its_usage(traced, seeded, fake, receiver):
    _, key = seeded
    fake.enqueue(Reply(text="one two three four", chunks=4, chunk_delay_s=0.15, usage=(5, 4)))
    with stream(traced, key) as r:
        assert r.status_code == 200
        body = r.read().decode()
    assert body.count("data: ") >= 5 and "[DONE]" in body
    request, attempts = receiver.trace(r.headers["request-id"], attempts=1)
    assert request.attrs["relay.stream"] is True and request.attrs["http.response.status_code"] == 200
    assert request.attrs["gen_ai.usage.input_tokens"] == 5 and request.attrs["gen_ai.usage.output_tokens"] == 4
    assert len(attempts) == 1 and attempts[0].kind == CLIENT
    # Both spans cover the chunks the upstream spaced out (3 gaps of 0.15 s), not just the response headers.
    assert request.seconds >= 0.45 and attempts[0].seconds >= 0.45
    trace_id, parent = traceparent_ids(fake.requests[0].headers["traceparent"])
    assert (trace_id, parent) == (request.trace_id, attempts[0].span_id)
    assert request.parent_id == ""  # no traceparent from the client: a new trace


def test_a_failed_request_and_a_client_that_leaves_mid_stream_end_their_spans_as_errors(traced, seeded, fake, receiver):
    _, key = seeded
    fake.enqueue(Reply(status=503, text="busy"), Reply(status=503, text="still busy"))
    r = ask(traced, key)
    assert r.status_code == 503
    request, attempts = receiver.trace(r.headers["x-request-id"], attempts=2)
    assert request.attrs["http.response.status_code"] == 503 and request.attrs["error.type"] == "upstream_error"
    assert request.status == STATUS_ERROR and "gen_ai.usage.output_tokens" in request.attrs
    assert [(s.attrs["http.response.status_code"], s.status) for s in attempts] == [(503, STATUS_ERROR)] * 2

    fake.reset()
    fake.enqueue(Reply(text="drip " * 40, chunks=40, chunk_delay_s=0.1))
    with stream(traced, key) as r:
        next(r.iter_raw())  # the first chunk, then the client goes away
        request_id = r.headers["request-id"]
    request, attempts = receiver.trace(request_id, attempts=1)
    assert request.attrs["http.response.status_code"] == 499 and request.attrs["error.type"] == "client_closed"
    assert request.status != STATUS_ERROR  # the client's doing, not the gateway's
    assert attempts[0].attrs["error.type"] == "client_closed" and request.seconds < 3.5


def test_a_key_move_and_a_fallback_are_attempts_of_their_own(traced, fake, receiver):
    seed = Seeder(traced.settings)
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1", api_key="k-dead", name="pooled")

    async def second_key(s: Any) -> None:  # k-dead is tried first (priority 1), k-live next (priority 2)
        row = await upstreams.get_upstream(s, up.name, tenant=tenant)
        await upstream_keys.add_key(s, row, "k-live", seed.box, priority=2)

    seed.run(second_key)
    seed.model(tenant, seed.upstream(tenant, base_url=fake.url + "/v1", name="spare-up"), "spare", "spare-id")
    seed.model(tenant, up, "m", upstream_model="m-id", fallbacks=["spare"])
    key = seed.key(tenant).secret
    fake.script_key("k-dead", Reply(status=403, text="forbidden"))
    fake.script_key("k-live", Reply(status=503, text="overloaded"))
    try:
        r = ask(traced, key)
    finally:
        fake.script_key("k-dead", None)
        fake.script_key("k-live", None)
    assert r.status_code == 200 and r.headers["relay-fallback-model"] == "spare"
    # k-dead refused (403): another key at once; k-live 503, retried once (503); then the fallback model answers.
    request, attempts = receiver.trace(r.headers["request-id"], attempts=4)
    assert [(s.name, s.attrs.get("http.response.status_code")) for s in attempts] == [
        ("chat m-id", 403), ("chat m-id", 503), ("chat m-id", 503), ("chat spare-id", 200)
    ]  # fmt: skip
    assert [s.attrs["relay.upstream"] for s in attempts] == ["pooled"] * 3 + ["spare-up"]
    assert len({s.attrs["relay.upstream_key_id"] for s in attempts[:3]}) == 2
    assert request.attrs["relay.served_model"] == "spare" and request.attrs["relay.attempts"] == 4
    assert request.attrs["gen_ai.request.model"] == "m" and request.attrs["gen_ai.response.model"] == "spare-id"
    assert [traceparent_ids(q.headers["traceparent"])[1] for q in fake.requests] == [s.span_id for s in attempts]


def test_tracing_is_asked_for_by_the_standard_variables():
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert not tracing.configured({})
    assert tracing.configured(endpoint)
    assert tracing.configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not tracing.configured(endpoint | {"OTEL_SDK_DISABLED": "true"})
    assert not tracing.configured(endpoint | {"OTEL_TRACES_EXPORTER": "none"})
    assert tracing.start({}) is None


# In a fresh interpreter: a gateway serves two requests; which opentelemetry modules did Relay import? The
# baseline is what our libraries import by themselves when OpenTelemetry is installed (redis-py: the API and
# the metrics SDK, at import; Litestar: its plugin's semantic-convention constants, when an app is built):
# Relay must add nothing to it unless tracing is configured.
SERVE_ONE = textwrap.dedent(
    """
    import sys, redis, redis.asyncio, litestar
    litestar.Litestar(route_handlers=[])
    baseline = {m for m in sys.modules if m.startswith("opentelemetry")}
    sys.path.insert(0, sys.argv[1])
    import httpx
    from support import GatewayServer, Seeder, base_settings, prepare_database
    from gateway.testing.fake_upstream import FakeUpstream, Reply

    fake = FakeUpstream().start()
    settings = base_settings("sqlite:///" + sys.argv[2], None)
    prepare_database(settings)
    server = GatewayServer(settings).start()
    seed = Seeder(server.settings)
    tenant = seed.tenant()
    seed.model(tenant, seed.upstream(tenant, base_url=fake.url + "/v1"), "m")
    key = seed.key(tenant).secret
    for stream in (False, True):
        r = httpx.post(server.url + "/v1/chat/completions", headers={"authorization": "Bearer " + key},
                       json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
        assert r.status_code == 200, r.text
    server.stop()
    fake.stop()
    print(" ".join(sorted({m for m in sys.modules if m.startswith("opentelemetry")} - baseline)))
    """
)


@pytest.mark.parametrize("configured", [False, True], ids=["unset", "set"])
def test_without_an_endpoint_relay_imports_nothing_of_opentelemetry(configured, receiver, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if configured:
        env |= otel_env(receiver)
    run = subprocess.run(
        [sys.executable, "-c", SERVE_ONE, str(Path(__file__).parents[1]), str(tmp_path / "relay.db")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    imported = run.stdout.split()
    if configured:  # the control: the same check sees the tracing SDK and exporter when tracing is on
        assert "opentelemetry.sdk.trace" in imported
        assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in imported
    else:
        assert imported == []
