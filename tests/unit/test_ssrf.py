"""The SSRF guard: hostile URLs at save time, IP-literal spellings, the allowlist, and real connects on loopback.

No test uses real DNS: resolvers are injected. Connect tests talk to a tiny aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from ipaddress import IPv4Address, IPv6Address, ip_address

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from gateway.ssrf import (
    Allowlist,
    BlockedAddress,
    GuardedResolver,
    check_ip,
    check_url_at_connect,
    check_url_at_save,
    guarded_session,
    parse_host,
)

NONE = Allowlist()


def answers(*ips: str) -> Callable[[str], list[str]]:
    return lambda host: list(ips)


def no_dns(host: str) -> list[str]:
    raise AssertionError(f"resolver must not be called, got {host!r}")


def nxdomain(host: str) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


PUBLIC = answers("1.2.3.4")

# (url, resolver) — the resolver answers a public address unless the case is about DNS answers,
# so every refusal below comes from the URL itself.
HOSTILE: list[tuple[str, Callable[[str], list[str]]]] = [
    (u, PUBLIC)
    for u in [
        "http://127.0.0.1",
        "http://127.0.0.1.",
        "http://localhost",
        "http://localhost:8080/v1",
        "http://LOCALHOST.",
        "http://foo.localhost",
        "http://ip6-localhost",
        "http://2130706433",
        "http://017700000001",
        "http://0177.0.0.1",
        "http://0x7f.0.0.1",
        "http://0x7f000001",
        "http://0x7f.1",
        "http://127.1",
        "http://127.0.1",
        "http://\uff11\uff12\uff17.0.0.1",  # fullwidth digits, normalised by the URL parser
        "http://[::1]",
        "http://[::ffff:127.0.0.1]",
        "http://[::ffff:7f00:1]",
        "http://[::ffff:8.8.8.8]",
        "http://[::127.0.0.1]",
        "http://[64:ff9b::7f00:1]",
        "http://[64:ff9b::a9fe:a9fe]",
        "http://[2002:7f00:1::]",
        "http://[2002:a9fe:a9fe::]",
        "http://0.0.0.0",
        "http://0",
        "http://0.1.2.3",
        "http://[::]",
        "http://169.254.169.254/latest/meta-data",
        "http://169.254.170.2/v2/credentials",
        "http://[fd00:ec2::254]",
        "http://100.100.100.200",
        "http://192.0.0.192",
        "http://metadata.google.internal",
        "http://metadata.google.internal./computeMetadata/v1",
        "http://metadata",
        "http://instance-data",
        "http://10.0.0.1",
        "http://172.16.0.1",
        "http://172.31.255.255",
        "http://192.168.1.1",
        "http://100.64.0.1",
        "http://198.18.0.1",
        "http://192.0.2.1",
        "http://224.0.0.1",
        "http://255.255.255.255",
        "http://240.0.0.1",
        "http://[fe80::1%25eth0]",
        "http://[fe80::1]",
        "http://[fec0::1]",
        "http://[fc00::1]",
        "http://[fd12:3456::1]",
        "http://[ff02::1]",
        "http://[2001:db8::1]",
        "http://[100::1]",
        "ftp://example.com",
        "file:///etc/passwd",
        "gopher://x",
        "data:text/plain,hi",
        "javascript:alert(1)",
        "//example.com",
        "http://",
        "http://user:pass@example.com",
        "http://x@169.254.169.254",
        "http://example.com@127.0.0.1",
        "http://example.com\\@127.0.0.1/",
        "http://127%2e0%2e0%2e1",
        "http://%6c%6fcalhost",
        "http://exa mple.com",
        "http://example.com\n.evil",
    ]
] + [
    ("http://rebind.example", answers("127.0.0.1")),
    ("http://mixed.example", answers("1.2.3.4", "10.0.0.5")),
    ("http://v6.example", answers("2606:4700::1111", "fe80::1%eth0")),
    ("http://mapped.example", answers("::ffff:169.254.169.254")),
]


@pytest.mark.parametrize(("url", "resolve"), HOSTILE, ids=[u for u, _ in HOSTILE])
def test_hostile_urls_refused_at_save(url: str, resolve: Callable[[str], list[str]]) -> None:
    with pytest.raises(BlockedAddress):
        check_url_at_save(url, NONE, resolve=resolve)


def test_hostile_table_is_large() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8",
        "https://1.1.1.1:8443/v1",
        "http://[2606:4700::1111]/v1",
        "http://[64:ff9b::808:808]",  # NAT64 of a public address
        "http://[2002:808:808::1]",  # 6to4 of a public address
    ],
)
def test_public_literals_accepted_without_dns(url: str) -> None:
    check_url_at_save(url, NONE, resolve=no_dns)
    check_url_at_connect(url, NONE)


def test_public_name_accepted() -> None:
    check_url_at_save("https://api.deepseek.com/v1", NONE, resolve=answers("1.2.3.4", "2606:4700::1"))


def test_unresolvable_name_accepted_at_save() -> None:
    check_url_at_save("https://not-yet-live.example/v1", NONE, resolve=nxdomain)


def test_messages_name_the_category() -> None:
    with pytest.raises(BlockedAddress, match=r"^127\.0\.0\.1 is a loopback address$"):
        check_url_at_save("http://0x7f000001", NONE, resolve=no_dns)
    with pytest.raises(BlockedAddress, match="cloud metadata"):
        check_ip(IPv4Address("169.254.169.254"), NONE)
    with pytest.raises(BlockedAddress, match="carrier-grade NAT"):
        check_ip(IPv4Address("100.64.1.1"), NONE)
    with pytest.raises(BlockedAddress, match="unspecified"):
        check_ip(IPv6Address("::"), NONE)
    with pytest.raises(BlockedAddress, match=r"NAT64 address embedding 127\.0\.0\.1, a loopback"):
        check_ip(IPv6Address("64:ff9b::7f00:1"), NONE)
    with pytest.raises(BlockedAddress, match="scheme 'ftp'"):
        check_url_at_save("ftp://example.com", NONE, resolve=no_dns)
    with pytest.raises(BlockedAddress, match="user information"):
        check_url_at_save("http://user:pass@example.com", NONE, resolve=no_dns)


def test_blocked_address_is_value_and_os_error() -> None:
    exc = BlockedAddress("127.0.0.1 is a loopback address")
    assert isinstance(exc, ValueError)
    assert isinstance(exc, OSError)
    assert str(exc) == exc.strerror == "127.0.0.1 is a loopback address"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("1.2.65535", "1.2.255.255"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_parse_host_literals(host: str, expected: str) -> None:
    assert parse_host(host) == ip_address(expected)


@pytest.mark.parametrize(
    "host", ["example.com", "1.2.3.4.5", "08.0.0.1", "256.1", "1.256.1", "4294967296", "1..1", ".1", "", "[1.2.3.4]"]
)
def test_parse_host_non_literals(host: str) -> None:
    assert parse_host(host) is None


_part = st.one_of(
    st.integers(0, 2**32).map(str),
    st.integers(0, 2**32).map(lambda n: f"0{n:o}"),
    st.integers(0, 2**32).map(lambda n: f"0x{n:x}"),
    st.text("0123456789abcdefx", min_size=1, max_size=6),
)


@given(st.lists(_part, min_size=1, max_size=5).map(".".join))
def test_parse_host_agrees_with_inet_aton(text: str) -> None:
    # parse_host must recognise everything the C library does; it may recognise more (a bare "0x").
    try:
        libc: IPv4Address | None = IPv4Address(socket.inet_aton(text))
    except OSError:
        libc = None
    ours = parse_host(text)
    if libc is not None:
        assert ours == libc
    elif ours is not None:
        assert any(p.lower() == "0x" for p in text.split("."))


def test_allowlist_parse() -> None:
    al = Allowlist.parse(" ollama.internal, 10.0.0.0/8, 192.168.1.5, localhost:11434, [fd12::1]:8080, fc00::/7, ")
    assert al.allows_host("OLLAMA.Internal.", 1)
    assert al.allows_host("localhost", 11434)
    assert not al.allows_host("localhost", 80)
    assert al.allows_ip(IPv4Address("10.9.9.9"))
    assert al.allows_ip(IPv4Address("192.168.1.5"))
    assert not al.allows_ip(IPv4Address("192.168.1.6"))
    assert al.allows_ip(IPv6Address("fd12::1"), 8080)
    assert al.allows_ip(IPv6Address("fd99::1"), 1)
    assert al.allows_ip(IPv6Address("::ffff:10.0.0.1"))
    assert Allowlist.parse("") == Allowlist()


@pytest.mark.parametrize("spec", ["not a host", "10.0.0.0/33", "localhost:0", "localhost:x", "host:99999", "[::1]x"])
def test_allowlist_rejects_garbage(spec: str) -> None:
    with pytest.raises(ValueError):
        Allowlist.parse(spec)


def test_allowlist_port_limits_an_ip() -> None:
    al = Allowlist.parse("127.0.0.1:11434")
    check_url_at_save("http://127.0.0.1:11434/v1", al, resolve=no_dns)
    check_url_at_connect("http://127.0.0.1:11434/v1", al)
    for url in ["http://127.0.0.1:11435", "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.2:11434"]:
        with pytest.raises(BlockedAddress):
            check_url_at_save(url, al, resolve=no_dns)


def test_allowlist_cidr() -> None:
    al = Allowlist.parse("10.0.0.0/8")
    check_url_at_save("http://10.1.2.3:8000", al, resolve=no_dns)
    check_url_at_save("http://vllm.corp.example", al, resolve=answers("10.20.30.40"))
    with pytest.raises(BlockedAddress):
        check_url_at_save("http://172.16.0.1", al, resolve=no_dns)
    with pytest.raises(BlockedAddress):
        check_url_at_save("http://vllm.corp.example", al, resolve=answers("10.20.30.40", "127.0.0.1"))


def test_allowlist_host_name_skips_checks() -> None:
    al = Allowlist.parse("ollama.internal, localhost:11434")
    check_url_at_save("http://OLLAMA.internal.:11434/v1", al, resolve=no_dns)
    check_url_at_save("http://localhost:11434", al, resolve=no_dns)
    with pytest.raises(BlockedAddress):
        check_url_at_save("http://localhost:80", al, resolve=no_dns)


def test_check_url_at_connect_needs_no_dns() -> None:
    check_url_at_connect("https://api.deepseek.com/v1", NONE)  # names are the resolver's job
    for url in ["http://127.0.0.1:8080", "http://localhost:8080", "http://0x7f.1", "gopher://x", "http://a@b.com"]:
        with pytest.raises(BlockedAddress):
            check_url_at_connect(url, NONE)


# --- real connections on loopback ---------------------------------------------------------------------------


class FixedResolver(AbstractResolver):
    """Answers every name with fixed addresses: a DNS server that rebinds to loopback."""

    def __init__(self, *ips: str) -> None:
        self.ips = ips

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in self.ips
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{request.url.port}/")

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def _blocked_cause(exc: aiohttp.ClientConnectorError) -> BlockedAddress:
    assert isinstance(exc.os_error, BlockedAddress)
    return exc.os_error


async def test_localhost_refused_at_connect(server_port: int) -> None:
    async with guarded_session(NONE) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://localhost:{server_port}/", allow_redirects=False)
    assert "local host" in str(_blocked_cause(info.value))


async def test_ip_literal_refused_at_connect(server_port: int) -> None:
    async with guarded_session(NONE) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://127.0.0.1:{server_port}/", allow_redirects=False)
    assert "loopback" in str(_blocked_cause(info.value))
    assert "loopback" in str(info.value)  # aiohttp's message carries ours


async def test_dns_rebinding_refused_at_connect(server_port: int) -> None:
    url = f"http://rebind.example:{server_port}/"
    check_url_at_save(url, NONE, resolve=PUBLIC)  # public when saved...
    async with guarded_session(NONE, resolver=FixedResolver("127.0.0.1")) as session:
        with pytest.raises(aiohttp.ClientConnectorDNSError) as info:  # ...loopback when connecting
            await session.get(url, allow_redirects=False)
    assert str(_blocked_cause(info.value)) == "127.0.0.1 is a loopback address"


async def test_guarded_resolver_refuses_any_bad_answer() -> None:
    resolver = GuardedResolver(NONE, FixedResolver("1.2.3.4", "169.254.169.254"))
    with pytest.raises(BlockedAddress, match="metadata"):
        await resolver.resolve("x.example", 80)
    allowed = GuardedResolver(Allowlist.parse("x.example:80"), FixedResolver("169.254.169.254"))
    assert [r["host"] for r in await allowed.resolve("x.example", 80)] == ["169.254.169.254"]
    with pytest.raises(BlockedAddress):
        await allowed.resolve("x.example", 81)


async def test_allowlisted_localhost_connects(server_port: int) -> None:
    async with (
        guarded_session(Allowlist.parse("localhost")) as session,
        session.get(f"http://localhost:{server_port}/", allow_redirects=False) as resp,
    ):
        assert resp.status == 200
        assert await resp.text() == "ok"


async def test_redirect_not_followed(server_port: int) -> None:
    async with (
        guarded_session(Allowlist.parse("localhost")) as session,
        session.get(f"http://localhost:{server_port}/redirect", allow_redirects=False) as resp,
    ):
        assert resp.status == 302
        assert resp.headers["Location"] == f"http://127.0.0.1:{server_port}/"


async def test_redirect_hop_is_checked_even_if_followed(server_port: int) -> None:
    async with guarded_session(Allowlist.parse("localhost")) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://localhost:{server_port}/redirect", allow_redirects=True)
    assert "127.0.0.1 is a loopback address" in str(_blocked_cause(info.value))


async def test_relay_send_maps_refusal_to_upstream_blocked(server_port: int) -> None:
    """A refusal says so, with the reason and the setting that allows it (issue 13: it said "cannot connect")."""
    from gateway.errors import UpstreamBlocked
    from gateway.upstreams.client import Timeouts, UpstreamRequest, send

    async with guarded_session(NONE) as session:
        with pytest.raises(UpstreamBlocked, match=r"loopback.*RELAY_UPSTREAM_ALLOWLIST"):
            await send(session, UpstreamRequest(f"http://127.0.0.1:{server_port}/", {}, b"{}"), Timeouts())
