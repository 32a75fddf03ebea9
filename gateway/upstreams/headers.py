"""Upstream request headers per dialect, and which upstream response headers reach the client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway.domain import Dialect, Upstream

ANTHROPIC_VERSION = "2023-06-01"

# Response headers worth passing on (rate-limit state, retry hints, the upstream's request id);
# everything else (set-cookie, server, hop-by-hop) stays behind.
FORWARDED_RESPONSE_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry")
FORWARDED_RESPONSE_PREFIXES = ("anthropic-ratelimit-", "x-ratelimit-")
_CLIENT_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/+=@")


def client_request_id(client_headers: Mapping[str, str]) -> str | None:
    """The caller's own ``x-request-id`` when it is a sane token: it reaches logs and the upstream."""
    value = client_headers.get("x-request-id")
    if value and len(value) <= 128 and all(c in _CLIENT_ID_CHARS for c in value):
        return value
    return None


def upstream_headers(
    upstream: Upstream, client_headers: Mapping[str, str], beta_defaults: Iterable[str] = ()
) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if upstream.dialect is Dialect.ANTHROPIC:
        headers["anthropic-version"] = client_headers.get("anthropic-version") or ANTHROPIC_VERSION
        beta = merge_betas(beta_defaults, client_headers.get("anthropic-beta", ""))
        if beta:
            headers["anthropic-beta"] = beta
        if upstream.api_key:
            headers["x-api-key"] = upstream.api_key
    elif upstream.api_key:
        headers["authorization"] = f"Bearer {upstream.api_key}"
    client_id = client_request_id(client_headers)
    if client_id is not None:
        headers["x-request-id"] = client_id  # the caller's trace continues upstream
    for name, value in upstream.extra_headers:
        headers[name.lower()] = value
    return headers


def merge_betas(defaults: Iterable[str], client_value: str) -> str:
    seen: dict[str, None] = {}
    for b in (*defaults, *client_value.split(",")):
        b = b.strip()
        if b:
            seen.setdefault(b, None)
    return ",".join(seen)


def forwarded_response_headers(headers: Mapping[str, str], *, secret: str = "") -> dict[str, str]:
    """The upstream headers a client may see; any value echoing our upstream credential is dropped."""
    scrub = len(secret) >= 4
    out: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        wanted = low in FORWARDED_RESPONSE_HEADERS or low.startswith(FORWARDED_RESPONSE_PREFIXES)
        if wanted and not (scrub and secret in value):
            out[low] = value
    return out


def endpoint_url(upstream: Upstream, endpoint: str) -> str:
    """``messages`` / ``count_tokens`` on Anthropic upstreams; ``chat``, ``responses``, ``embeddings`` or
    ``completions`` on OpenAI ones.

    An openai-dialect base URL includes its version path; an anthropic one does not.
    """
    base = upstream.base_url.rstrip("/")
    if upstream.dialect is Dialect.ANTHROPIC:
        return base + ("/v1/messages/count_tokens" if endpoint == "count_tokens" else "/v1/messages")
    if endpoint in ("responses", "embeddings", "completions"):
        return f"{base}/{endpoint}"
    return base + "/chat/completions"
