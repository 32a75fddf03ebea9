"""The one orchestration of a call: plan the upstream request, send it, answer (JSON or stream), meter it.

Same dialect on both sides → passthrough: the client's body goes through with only the model
changed. Otherwise the pure converters of ``gateway.convert`` translate both ways. Either way a
stream is relayed chunk by chunk through one loop, the HTTP status is decided before the first
byte, and usage is recorded however the call ends (including a client that goes away).

The call's records live in ``gateway.calls``; this module stays one class on purpose (about 550 lines):
attempts, retries, the stream loop and metering share the call's state, and the hot path reads top to
bottom in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

import aiohttp
import msgspec

from gateway import metrics, tracing
from gateway.calls import Call, JSONReply, StreamReply, request_id_headers
from gateway.convert.types import StreamTap
from gateway.convert.usage import estimate_tokens, usage_from_openai
from gateway.domain import Dialect, Route, Upstream, Usage
from gateway.drain import Drain
from gateway.errors import GatewayError, UpstreamError, UpstreamUnavailable
from gateway.metering import Meter, UsageRecord, request_log_line
from gateway.metering.limits import Limiter, asked_output, output_model
from gateway.metering.outputs import OutputStats
from gateway.plans import Plan, SearchPlan, converts, make_plan, new_id
from gateway.protocols.sse import SSEDecoder, SSEError
from gateway.security import scrub
from gateway.steering import Steering, moves_key
from gateway.stream_reading import (
    PING,
    chunks_or_silence,
    encode_all,
    has_error_event,
    read_what_arrived,
    take_chunk,
)
from gateway.tokencount import count_anthropic_request, count_request
from gateway.upstreams.breaker import Breakers
from gateway.upstreams.client import Timeouts, UpstreamRequest, read_body, send
from gateway.upstreams.errors import upstream_error
from gateway.upstreams.headers import endpoint_url, forwarded_response_headers, upstream_headers
from gateway.upstreams.output_limit import StatedLimit, stated_output_limit
from gateway.upstreams.pool import KeyPool
from gateway.upstreams.retry import RetryPolicy, falls_back
from gateway.websearch import loop as search_loop
from gateway.websearch.backend import SearchBackend
from gateway.websearch.blocks import message_events

_encode = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode
log = logging.getLogger("relay.request")
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class Relay:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        guarded_http: aiohttp.ClientSession,
        meter: Meter,
        limiter: Limiter,
        timeouts: Timeouts,
        beta_defaults: tuple[str, ...] = (),
        retry: RetryPolicy | None = None,
        breakers: Breakers | None = None,
        envelope_key: bytes = b"",
        outputs: OutputStats | None = None,
        web_search: SearchBackend | None = None,
        pool: KeyPool | None = None,
    ) -> None:
        self._envelope_key = envelope_key
        self._web_search = web_search
        """Runs ``web_search`` server tools for OpenAI-dialect upstreams (``gateway.websearch``); None: dropped."""
        self.outputs = outputs or OutputStats()
        """What each model really produces, for budget reservations (``metering/outputs.py``)."""
        self._retry = retry or RetryPolicy()
        self.breakers = self._breakers = breakers or Breakers()
        self.pool = pool or KeyPool(self._breakers)
        """Which key of an upstream's pool carries each attempt, and the keys' health (``upstreams/pool.py``)."""
        self.steering = Steering(self.pool, self._background)
        self.on_circuit_open: Callable[[Upstream], None] | None = None
        """Set by the services: raise the ``upstream.circuit_open`` alert."""
        self._http = http
        self._guarded_http = guarded_http
        self._meter = meter
        self._limiter = limiter
        self._settling: set[asyncio.Task[None]] = set()
        self._timeouts = timeouts
        self._beta_defaults = beta_defaults
        self.output_limits: dict[str, int] = {}
        """Output limits upstreams stated for models (by model id) that had none: this process clamps to them."""
        self.on_output_limit: Callable[[Route, int], None] | None = None
        """Set by the services: keep a learned output limit in the model's profile, for every process."""
        self.drain = Drain()
        """Set by the app: after SIGTERM, open streams end with an error event before the grace runs out."""

    async def call(self, call: Call, fallbacks: tuple[Route, ...] = ()) -> JSONReply | StreamReply:
        """Relay ``call``; before the first byte, a connect error, timeout, 429 or 5xx is retried or tries the
        next fallback, and a stated output limit is retried clamped.

        Retries and fallbacks are attempts inside the request: it is metered as one row (``call.tries``
        lists the failed attempts). Once a byte has reached the client there is no retry.
        """
        call.trace = tracing.begin(call)  # None unless tracing is on
        try:
            reply = await self._call_with_fallbacks(call, fallbacks)
        except BaseException as exc:
            if call.trace is not None:
                call.trace.abandon(exc)  # a no-op when the request's row already ended its span
            self._settle(call)
            self._abandon(call)
            raise
        if isinstance(reply, JSONReply):
            self._settle(call)
            self._abandon(call)
            return reply
        return StreamReply(headers=reply.headers, chunks=self._settled_after(call, reply.chunks))

    async def _settled_after(self, call: Call, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
            self._settle(call)
            self._abandon(call)

    def _abandon(self, call: Call) -> None:
        """A call that ended without keeping its turn lets go of it, off the response path."""
        keeper = call.keeper
        if keeper is None or keeper.settled:
            return
        keeper.settled = True
        self._background(keeper.abandon())

    def _settle(self, call: Call) -> None:
        """Release the call's limits and charge its real cost, off the response path."""
        ticket, call.ticket = call.ticket, None
        if ticket is None:
            return
        self._background(self._limiter.settle(ticket, call.spent[0], call.spent[1]))

    async def _call_with_fallbacks(self, call: Call, fallbacks: tuple[Route, ...]) -> JSONReply | StreamReply:
        call.requested_model = call.route.public_name
        routes = await self.steering.routes(call, (call.route, *fallbacks))
        call.route = routes[0]
        attempts = 0
        waited = 0.0
        for n, route in enumerate(routes):
            retry = 0
            call.tried_keys.clear()
            while True:
                # Later attempts are copies sharing ``spent``, ``tries`` and ``tried_keys``; the ticket stays
                # with ``call``.
                attempt = call if attempts == 0 else replace(call, route=route, notes=(), ticket=None)
                attempts += 1
                try:
                    reply = await self._attempt(attempt)
                except GatewayError as exc:
                    if call.trace is not None:
                        call.trace.attempt_failed(exc.status_code, exc.code)
                    key_id = attempt.route.upstream.key_id
                    if key_id and moves_key(exc) and len(route.upstream.keys) > len(call.tried_keys) + 1:
                        call.tried_keys.append(key_id)  # another key of the same upstream, at once
                        call.tries.append((route.public_name, exc.status_code, exc.code))
                        continue
                    delay = self._retry.delay(exc, retry, waited)
                    if delay is not None:
                        call.tries.append((route.public_name, exc.status_code, exc.code))
                        waited += delay
                        retry += 1
                        await asyncio.sleep(delay)
                        continue
                    if n + 1 < len(routes) and falls_back(exc):
                        log.warning("falling back from %s to %s: %s", route.public_name, routes[n + 1].public_name,
                                    exc.code)  # fmt: skip
                        call.tries.append((route.public_name, exc.status_code, exc.code))
                        break
                    self._record(attempt, Usage(), exc.status_code, None, exc.code)  # the request's one row
                    raise
                if route.public_name != call.requested_model:
                    reply.headers["relay-fallback-model"] = route.public_name
                return reply
        raise AssertionError("unreachable: the loop returns or raises")

    async def _attempt(self, call: Call) -> JSONReply | StreamReply:
        if call.route.upstream.keys:
            call.route = await self.steering.carry_key(call)
        learned = self.output_limits.get(call.route.model_id)
        if learned is not None and "max_output_tokens" not in call.route.profile:
            call.route = with_output_limit(call.route, learned)
        plan = make_plan(
            call.door,
            call.route,
            call.body,
            call.headers,
            self._beta_defaults,
            self._envelope_key,
            keep=call.keeper is not None,
            endpoint=call.endpoint,
            web_search=self._web_search is not None,
        )
        call.notes = plan.notes
        if call.trace is not None:  # the attempt's span, and its traceparent in the upstream request
            call.trace.attempt(call.route, plan.request.headers, call.tries)
        if plan.search is not None and self._web_search is not None:
            return await self._searching(call, plan, plan.search, self._web_search)
        resp = await self._open(call, plan.request)
        secret = call.route.upstream.api_key
        headers = {**request_id_headers(call.request_id), **forwarded_response_headers(resp.headers, secret=secret)}
        if plan.notes:
            headers["relay-conversion-notes"] = ",".join(plan.notes)
        if resp.status >= 400:
            raw = await _error_body(resp)
            stated = self._stated_output_limit(call, resp.status, raw)
            if stated is not None:
                return await self._retry_clamped(call, resp.status, stated)
            err = scrubbed_error(plan.error(resp.status, raw, resp.headers), secret)
            if isinstance(err, UpstreamError):
                err.key_refused = resp.status in (401, 403, 407)
            self.steering.judge(call, resp.status, resp.headers, err.message)
            raise err
        if not call.stream:
            return await self._answer_json(call, plan, resp, headers)
        if resp.content_type != "text/event-stream":
            await self._refuse_non_stream(call, resp)
        headers["cache-control"] = "no-cache"
        return StreamReply(headers=headers, chunks=self._relay_stream(call, plan, plan.make_tap(), resp))

    async def _open(self, call: Call, request: UpstreamRequest) -> aiohttp.ClientResponse:
        """Send ``request`` to the call's upstream through its key's circuit breaker."""
        upstream = call.route.upstream
        circuit = self.pool.breaker_id(upstream)
        if not self._breakers.allow(circuit):
            err = UpstreamError(f"upstream {upstream.name!r} is failing; circuit open", status_code=503)
            err.code = "circuit_open"
            raise err
        sent = time.monotonic()
        try:
            resp = await send(
                self._session_for(call.route), request, self._timeouts_for(call.route), self._deadline(call)
            )
        except GatewayError:
            call.upstream_ms = _ms_since(sent)
            self._circuit_failed(upstream, circuit)
            raise
        call.upstream_ms = _ms_since(sent)  # the upstream's part: from sending to its response headers
        if resp.status >= 500:
            self._circuit_failed(upstream, circuit)
        else:
            self._breakers.success(circuit)
            metrics.set_circuit(upstream.name, False)
        return resp

    def _circuit_failed(self, upstream: Upstream, circuit: str) -> None:
        was_open = self._breakers.state(circuit) == "open"
        self._breakers.failure(circuit)
        now_open = self._breakers.state(circuit) == "open"
        metrics.set_circuit(upstream.name, now_open)
        if now_open and not was_open and self.on_circuit_open is not None:
            self.on_circuit_open(upstream)

    async def _searching(
        self, call: Call, plan: Plan, search: SearchPlan, backend: SearchBackend
    ) -> JSONReply | StreamReply:
        """Relay runs the request's web searches (``gateway.websearch.loop``), all before the first byte: one
        ledger row with the summed usage, the searches' price added to its cost."""
        secret = call.route.upstream.api_key
        answered: list[Usage] = []

        async def exchange(body: dict[str, Any]) -> dict[str, Any]:
            resp = await self._open(call, replace(plan.request, body=_encode(body)))
            if resp.status >= 400:
                raw = await _error_body(resp)
                stated = self._stated_output_limit(call, resp.status, raw)
                raise (
                    _Clamp(resp.status, stated)
                    if stated
                    else scrubbed_error(plan.error(resp.status, raw, resp.headers), secret)
                )
            try:
                doc = _decode_json(await read_body(resp, MAX_RESPONSE_BYTES, self._deadline(call)))
            except (aiohttp.ClientError, TimeoutError, ValueError, msgspec.DecodeError, RecursionError) as exc:
                raise UpstreamUnavailable(f"upstream answer unreadable ({type(exc).__name__})") from None
            finally:
                resp.release()
            if not isinstance(doc, dict):
                raise UpstreamUnavailable("upstream sent a response that is not a JSON object")
            answered.append(usage_from_openai(doc.get("usage")))
            return doc

        try:
            outcome = await search_loop.run(search, exchange, backend.search, new_id)
        except _Clamp as clamp:
            call.consumed += answered
            return await self._retry_clamped(call, clamp.status, clamp.stated)
        except GatewayError as exc:
            call.consumed += answered  # the loop's earlier upstream calls were answered: they are billed
            raise scrubbed_error(exc, secret) from None
        extra = backend.micro_usd_per_search * outcome.searches
        self._record(call, outcome.usage, 200, _ms_since(call.started) if call.stream else None, None, extra)
        await self._completed(call, replace(plan, kept=lambda: outcome.message))
        headers = request_id_headers(call.request_id)
        if plan.notes:
            headers["relay-conversion-notes"] = ",".join(plan.notes)
        body = scrub(_encode(outcome.message), secret)
        if not call.stream:
            return JSONReply(status=200, body=body, headers={**headers, "content-type": "application/json"})
        events = scrub(message_events(outcome.message), secret)
        return StreamReply(headers={**headers, "cache-control": "no-cache"}, chunks=_once(events))

    async def _refuse_non_stream(self, call: Call, resp: aiohttp.ClientResponse) -> None:
        """A 200 that is not an event stream (an HTML page from a proxy) is a bad gateway, not a stream."""
        kind = resp.content_type or "no content type"
        resp.close()
        err = UpstreamUnavailable(f"upstream answered a streaming request with {kind}, not an event stream")
        raise err

    async def count_tokens(self, call: Call) -> JSONReply:
        """Anthropic upstreams count for themselves; for the others we count locally (never a fake 0)."""
        headers = request_id_headers(call.request_id)
        route = call.route
        if route.dialect is not Dialect.ANTHROPIC:
            count = count_anthropic_request(call.body)
            headers["content-type"] = "application/json"
            return JSONReply(status=200, body=_encode({"input_tokens": count}), headers=headers)
        body = {**call.body, "model": route.upstream_model}
        request = UpstreamRequest(
            url=endpoint_url(route.upstream, "count_tokens"),
            headers=upstream_headers(route.upstream, call.headers, self._beta_defaults),
            body=_encode(body),
        )
        resp = await send(self._session_for(route), request, self._timeouts_for(route))
        try:
            raw = await read_body(resp, 1024 * 1024)
        except (aiohttp.ClientError, TimeoutError):
            raise UpstreamUnavailable("upstream connection failed while counting tokens") from None
        finally:
            resp.release()
        if resp.status >= 400:
            raise upstream_error(resp.status, raw, resp.headers, secret=route.upstream.api_key)
        headers["content-type"] = "application/json"
        forwarded = forwarded_response_headers(resp.headers, secret=route.upstream.api_key)
        return JSONReply(status=200, body=scrub(raw, route.upstream.api_key), headers={**headers, **forwarded})

    async def open_upstream(
        self, route: Route, request: UpstreamRequest, client_headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """Another API of ``route``'s upstream (message batches): its headers, session (SSRF guard) and timeouts."""
        headers = upstream_headers(route.upstream, client_headers, self._beta_defaults)
        return await send(self._session_for(route), replace(request, headers=headers), self._timeouts_for(route))

    def _session_for(self, route: Route) -> aiohttp.ClientSession:
        """Platform upstreams are trusted; a tenant's goes through the SSRF guard."""
        return self._http if route.upstream.tenant_id is None else self._guarded_http

    def _deadline(self, call: Call) -> float:
        """When the call's total time limit runs out (``time.monotonic()``): connect, headers and body included."""
        return call.started + self._timeouts.total_s

    def _timeouts_for(self, route: Route) -> Timeouts:
        t = route.upstream.timeout_s
        return self._timeouts if t is None else replace(self._timeouts, first_byte_s=t, idle_s=t)

    def _stated_output_limit(self, call: Call, status: int, raw: bytes) -> StatedLimit | None:
        """The output limit a converted request's 400 states, when no limit was known for the model.

        Only converted requests: their client cannot read the upstream's wording (Claude Code asks for
        ``max_tokens: 128000``; DeepSeek answers "the valid range of max_tokens is [1, 8192]"), and only
        they honour the profile's ``max_output_tokens`` on the retry.
        """
        if status not in (400, 422) or "max_output_tokens" in call.route.profile:
            return None
        if not converts(call.door, call.route):
            return None
        return stated_output_limit(raw.decode("utf-8", "replace"))

    async def _retry_clamped(self, call: Call, status: int, stated: StatedLimit) -> JSONReply | StreamReply:
        """Send the request once more with ``max_tokens`` clamped (a ``max_tokens_clamped`` note says so).

        The same request and ledger row: the refused try is listed among its attempts. A limit that
        belongs to the model is remembered in this process, and through ``on_output_limit`` in its profile.
        """
        call.tries.append((call.route.public_name, status, "max_tokens_too_large"))
        call.route = with_output_limit(call.route, stated.limit)
        if stated.fixed:
            self.output_limits[call.route.model_id] = stated.limit
            log.warning("model %s: the upstream accepts at most %d output tokens", call.route.public_name,
                        stated.limit)  # fmt: skip
            if self.on_output_limit is not None:
                self.on_output_limit(call.route, stated.limit)
        return await self._attempt(call)

    async def _answer_json(
        self, call: Call, plan: Plan, resp: aiohttp.ClientResponse, headers: dict[str, str]
    ) -> JSONReply:
        try:
            raw = await read_body(resp, MAX_RESPONSE_BYTES, self._deadline(call))
            body, usage = plan.answer_json(raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            err: GatewayError = UpstreamUnavailable(
                f"upstream connection failed while reading the answer ({type(exc).__name__})"
            )
            raise err from None
        except (ValueError, msgspec.DecodeError, RecursionError):  # RecursionError: JSON nested too deeply
            err = UpstreamUnavailable("upstream sent a response that is not valid JSON (or nested too deeply)")
            raise err from None
        except GatewayError as exc:  # a converter found an error inside a 200 answer
            raise scrubbed_error(exc, call.route.upstream.api_key) from None
        finally:
            resp.release()
        self._record(call, usage, 200, None, None)
        await self._completed(call, plan)
        headers["content-type"] = "application/json"
        return JSONReply(status=200, body=scrub(body, call.route.upstream.api_key), headers=headers)

    async def _relay_stream(
        self, call: Call, plan: Plan, tap: StreamTap, resp: aiohttp.ClientResponse
    ) -> AsyncIterator[bytes]:
        decoder = SSEDecoder()
        secret = call.route.upstream.api_key
        call_deadline = self._deadline(call)
        drain = self.drain
        ttft_ms: int | None = None
        error_code: str | None = None
        clean = False
        ping = PING[call.door]
        # Taps with a fast lane take plain content events as bytes, past the decoder: same-dialect taps relay
        # them, the Responses door's chain converts them (stream_reading.take_chunk, protocols.sse.leading_run).
        pass_raw: Callable[[bytes], tuple[bytes, bytes]] | None = getattr(tap, "pass_raw", None)
        try:
            async for chunk in chunks_or_silence(
                resp, self._timeouts.keepalive_s, lambda: min(call_deadline, drain.deadline)
            ):
                if chunk is None:  # the upstream is thinking: keep proxies and stall detectors from cutting us
                    if time.monotonic() < min(call_deadline, drain.deadline):
                        yield ping
                else:
                    wire, out = take_chunk(chunk, decoder, tap, pass_raw)
                    if wire:
                        if error_code is None and has_error_event(out):
                            error_code = "upstream_stream_error"
                        if ttft_ms is None:
                            ttft_ms = _ms_since(call.started)
                        if tap.finished and error_code is None:
                            await self._completed(call, plan)
                        yield scrub(wire, secret)
                    if tap.finished:
                        break
                now = time.monotonic()
                if now >= call_deadline:
                    error_code = "upstream_timeout"
                    yield encode_all(tap.fail("upstream stream exceeded the total time limit", "timeout_error"))
                    break
                if now >= drain.deadline:
                    error_code = "gateway_draining"
                    yield encode_all(tap.fail("the gateway is restarting; retry the request", "overloaded_error"))
                    break
            else:
                tail = [e for ev in decoder.finish() for e in tap.feed(ev)] + tap.finish()
                if error_code is None and has_error_event(tail):
                    error_code = "upstream_stream_error"
                if error_code is None and tap.finished:
                    await self._completed(call, plan)
                if tail:
                    yield scrub(encode_all(tail), secret)
            clean = error_code is None
        except (aiohttp.ClientError, TimeoutError, SSEError) as exc:
            error_code = "upstream_stream_error"
            yield encode_all(tap.fail(f"upstream stream failed ({type(exc).__name__})", "api_error"))
        except RecursionError:  # an event nested deeper than any decoder will follow
            error_code = "upstream_stream_error"
            yield encode_all(tap.fail("upstream sent a stream event nested too deeply", "api_error"))
        finally:
            if clean:
                resp.release()
            else:
                if error_code is None and not tap.finished:
                    read_what_arrived(resp, decoder, tap)  # the client left: the upstream's usage may be here
                resp.close()  # cancels the upstream request when the client went away or it failed
            status = (
                (200 if tap.finished else 499)
                if error_code is None
                else 503
                if error_code == "gateway_draining"
                else 502
            )
            self._record(call, _usage_or_estimate(call, tap, started=ttft_ms is not None), status, ttft_ms, error_code)

    def _record(
        self, call: Call, usage: Usage, status: int, ttft_ms: int | None, error_code: str | None, extra_cost: int = 0
    ) -> None:
        """The request's one ledger row; ``extra_cost`` (micro-USD) is what it cost beyond tokens (web searches)."""
        route = call.route
        asked = call.requested_model or route.public_name
        for earlier in call.consumed:
            usage = usage.plus(earlier)
        rec = UsageRecord(
            request_id=call.request_id,
            tenant_id=call.principal.tenant_id,
            key_id=call.principal.key_id,
            model=asked,
            attempts=len(call.tries) + 1,
            served_model=route.public_name if route.public_name != asked else None,
            tries=tuple(call.tries),
            conversion_notes=tuple(call.notes),
            upstream_id=route.upstream.id,
            upstream_key_id=route.upstream.key_id or None,
            asked_model=call.asked_model if call.asked_model not in ("", asked) else None,
            door_dialect=call.door.value,
            upstream_dialect=route.dialect.value,
            stream=call.stream,
            usage=usage,
            cost_micro_usd=route.price.cost_micro_usd(usage) + extra_cost,
            status=status,
            latency_ms=_ms_since(call.started),
            ttft_ms=ttft_ms,
            error_code=error_code,
        )
        self._meter.record(rec)
        if call.trace is not None:
            call.trace.finish(rec, route)  # the request's spans end with its one row
        if status == 200 and not usage.estimated:
            self.outputs.observe(output_model(route), asked_output(call.body), usage.output_tokens)
        self.steering.finished(call, status, usage)
        metrics.observe(rec, route.upstream.name)
        call.spent[0] += usage.total_tokens
        call.spent[1] += rec.cost_micro_usd
        if log.isEnabledFor(logging.INFO):
            line = request_log_line(
                rec,
                call.principal.prefix,
                call.notes,
                call.client_request_id,
                client_ip=call.client_ip,
                upstream=route.upstream.name,
                upstream_base_url=route.upstream.base_url,
                upstream_ms=call.upstream_ms,
            )
            log.info("%s", line, extra=line.extra)

    async def _completed(self, call: Call, plan: Plan) -> None:
        """Hand a completed call's final reply to its keeper (once; never failing the reply)."""
        keeper = call.keeper
        if keeper is None or keeper.settled or plan.kept is None:
            return
        kept = plan.kept()
        if kept is None or kept.get("status") == "failed":
            return
        keeper.settled = True
        try:
            await keeper.complete(kept)
        except Exception:
            log.warning("could not keep reply %s of request %s", kept.get("id"), call.request_id, exc_info=True)
            return
        reply_id = kept.get("id")
        if isinstance(reply_id, str):
            self.steering.kept(call, reply_id)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` off the response path (kept referenced until it ends)."""
        task = asyncio.create_task(work)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)


class _Clamp(Exception):
    """A searching call's upstream stated its output limit: the call is retried clamped."""

    def __init__(self, status: int, stated: StatedLimit) -> None:
        self.status = status
        self.stated = stated


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _error_body(resp: aiohttp.ClientResponse) -> bytes:
    """An upstream error's body (at most 1 MiB; empty when it cannot be read)."""
    try:
        return await read_body(resp, 1024 * 1024)
    except (aiohttp.ClientError, TimeoutError, GatewayError):
        return b""
    finally:
        resp.release()


def with_output_limit(route: Route, limit: int) -> Route:
    """``route`` whose requests ask for at most ``limit`` output tokens."""
    return replace(route, profile={**route.profile, "max_output_tokens": limit}, max_output_tokens=limit)


def scrubbed_error(err: GatewayError, secret: str) -> GatewayError:
    """``err`` with the upstream credential scrubbed from its message and its prepared body (``scrub``)."""
    if len(secret) < 4:
        return err
    err.message = scrub(err.message.encode(), secret).decode()
    if err.envelope is not None:
        err.envelope = _decode_json(scrub(_encode(err.envelope), secret))
    return err


def _usage_or_estimate(call: Call, tap: StreamTap, *, started: bool) -> Usage:
    """The upstream's usage; what it left out of a cut stream is estimated (and marked so)."""
    usage = tap.usage
    if not started or usage.estimated:
        return usage
    chars = getattr(tap, "out_chars", 0)
    if not getattr(tap, "usage_final", True) and chars:
        usage = replace(usage, output_tokens=max(usage.output_tokens, estimate_tokens(chars)), estimated=True)
    if usage.input_tokens == 0 and usage.cache_read_tokens == 0 and usage.cache_write_tokens == 0:
        usage = replace(usage, input_tokens=count_request(call.door, call.body), estimated=True)
    return usage


def _ms_since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)
