"""SSRF guard for tenant-supplied upstream base URLs (platform upstreams are trusted and skip it).

A tenant URL is checked twice: when saved (``check_url_at_save``: scheme, literal address, blocked names and
every DNS answer) and on every connect, because DNS can answer differently later (rebinding). The connect
check lives in ``guarded_session``: a client middleware checks each request URL, redirect hops included (aiohttp
does not call the resolver for IP literals), and ``GuardedResolver`` checks every resolved address. The
connection then goes to exactly the addresses that were checked, so there is no second, unchecked resolution.

Address categories are explicit tables, not ``ipaddress.is_private`` & co, whose answers changed between
Python patch releases. ``RELAY_UPSTREAM_ALLOWLIST`` (``Allowlist``) lets an operator admit e.g. a local Ollama.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

__all__ = [
    "Allowlist",
    "BlockedAddress",
    "GuardedResolver",
    "check_ip",
    "check_url_at_connect",
    "check_url_at_save",
    "guarded_session",
    "parse_host",
]

IPAddress = IPv4Address | IPv6Address


class BlockedAddress(ValueError, OSError):
    """A URL or address a tenant upstream may not use.

    An ``OSError`` too, so that aiohttp wraps it in ``ClientConnectorError`` (``.os_error`` is this object)
    like any other failure to connect. ``strerror`` carries the message because aiohttp prints that.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.strerror = message


_METADATA = "a cloud metadata address"
_PRIVATE = "a private address"
_DOCS = "a documentation address"
_RESERVED = "a reserved address"
# Order matters: the first match names the category, so specific entries precede the ranges holding them.
_V4_BLOCKED: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), what)
    for net, what in (
        ("169.254.169.254/32", _METADATA),  # AWS, GCP, Azure, DigitalOcean, ...
        ("169.254.170.2/32", _METADATA),  # AWS ECS task metadata
        ("100.100.100.200/32", _METADATA),  # Alibaba Cloud
        ("192.0.0.192/32", _METADATA),  # Oracle Cloud
        ("0.0.0.0/32", "the unspecified address"),  # connects to the local host on Linux
        ("0.0.0.0/8", "a 'this network' address"),
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", _PRIVATE),
        ("172.16.0.0/12", _PRIVATE),
        ("192.168.0.0/16", _PRIVATE),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("169.254.0.0/16", "a link-local address"),
        ("192.0.0.0/24", _RESERVED),
        ("192.0.2.0/24", _DOCS),
        ("198.51.100.0/24", _DOCS),
        ("203.0.113.0/24", _DOCS),
        ("198.18.0.0/15", "a benchmarking address"),
        ("192.88.99.0/24", _RESERVED),  # deprecated 6to4 relay anycast
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", _RESERVED),
    )
)
_V6_BLOCKED: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), what)
    for net, what in (
        ("fd00:ec2::254/128", _METADATA),  # AWS over IPv6
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001:db8::/32", _DOCS),
        ("3fff::/20", _DOCS),
        ("2001::/23", _RESERVED),  # IETF protocol assignments: Teredo, benchmarking 2001:2::/48, ORCHID
        ("fc00::/7", "a unique-local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)
# IPv6 forms that carry an IPv4 address the OS or a translator may end up reaching: judge the embedded one.
_V4_COMPAT = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = IPv6Network("2000::/3")

# Names that reach the local host or a metadata service without (or before) DNS.
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _norm_name(host: str) -> str:
    return host.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Operator exceptions: exact host names, IPs and CIDR ranges, each optionally limited to one port."""

    hosts: tuple[tuple[str, int | None], ...] = ()
    networks: tuple[tuple[IPv4Network | IPv6Network, int | None], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> Allowlist:
        """Parse ``"ollama.internal, 10.0.0.0/8, [fd12::1]:8080, localhost:11434"``; raises ValueError."""
        hosts: list[tuple[str, int | None]] = []
        networks: list[tuple[IPv4Network | IPv6Network, int | None]] = []
        for raw in spec.split(","):
            if not (entry := raw.strip()):
                continue
            try:  # a typo here must stop startup, not silently open or close a door
                target, port = _split_port(entry)
                if "/" in target:
                    networks.append((ip_network(target, strict=False), port))
                elif (ip := parse_host(target)) is not None:
                    networks.append((ip_network(ip), port))
                elif _valid_name(_norm_name(target)):
                    hosts.append((_norm_name(target), port))
                else:
                    raise ValueError("neither a host name, an IP nor a CIDR range")
            except ValueError as exc:
                raise ValueError(f"RELAY_UPSTREAM_ALLOWLIST: cannot parse {entry!r}: {exc}") from None
        return cls(tuple(hosts), tuple(networks))

    def allows_host(self, host: str, port: int | None = None) -> bool:
        name = _norm_name(host)
        return any(h == name and p in (None, port) for h, p in self.hosts)

    def allows_ip(self, ip: IPAddress, port: int | None = None) -> bool:
        # An IPv4-mapped IPv6 address reaches the same IPv4 host, so an IPv4 allowance covers it.
        candidates = [ip, ip.ipv4_mapped] if isinstance(ip, IPv6Address) and ip.ipv4_mapped else [ip]
        return any(a in net and p in (None, port) for net, p in self.networks for a in candidates)


def allowlist_entry(url: str | URL) -> str:
    """The ``RELAY_UPSTREAM_ALLOWLIST`` entry that lets tenant upstreams reach ``url``'s host and port."""
    u = URL(url) if isinstance(url, str) else url
    host = u.host or ""
    return f"[{host}]:{u.port}" if ":" in host else f"{host}:{u.port}"


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6] or [v6]:port
        inner, _, rest = entry[1:].partition("]")
        return inner, _port(rest[1:]) if rest else None
    if entry.count(":") == 1:  # host:port or v4[/len]:port; bare IPv6 has several colons and no port
        target, _, port = entry.partition(":")
        return target, _port(port)
    return entry, None


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
        raise ValueError(f"bad port {text!r}")
    return int(text)


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def _check_name(host: str) -> None:
    name = _norm_name(host)
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        raise BlockedAddress(f"{name} names the local host")
    if name in _METADATA_NAMES:
        raise BlockedAddress(f"{name} names a cloud metadata service")


def parse_host(host: str) -> IPAddress | None:
    """The address a host string denotes if resolvers would read it as a literal, else None.

    Beyond dotted quads this accepts what ``inet_aton`` does (``2130706433``, ``0177.0.0.1``, ``0x7f.1``,
    ``127.1``), plus a trailing dot and ``0x`` as zero like the WHATWG URL parser: answering "that is an IP"
    too often only blocks more. IPv6 may be bracketed and carry a zone id (``%eth0`` or ``%25eth0``).
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if ":" not in text:
            return None
    if ":" in text:
        try:
            return IPv6Address(text.partition("%")[0])
        except ValueError:
            return None
    return _parse_inet_aton(text[:-1] if text.endswith(".") else text)


def _parse_inet_aton(text: str) -> IPv4Address | None:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        low = part.lower()
        if low.startswith("0x"):
            digits, base, alphabet = low[2:], 16, "0123456789abcdef"
        elif len(low) > 1 and low.startswith("0"):
            digits, base, alphabet = low[1:], 8, "01234567"
        else:
            digits, base, alphabet = low, 10, "0123456789"
        if not all(c in alphabet for c in digits) or (base == 10 and not digits):
            return None
        values.append(int(digits, base) if digits else 0)
    # All parts but the last are single bytes; the last fills the remaining bytes ("127.1" is 127.0.0.1).
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return IPv4Address(number)


def _category(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None when it is."""
    if isinstance(ip, IPv4Address):
        return next((what for net, what in _V4_BLOCKED if ip in net), None)
    if (mapped := ip.ipv4_mapped) is not None:
        return f"an IPv4-mapped IPv6 address (of {mapped})"
    for net, what in _V6_BLOCKED:
        if ip in net:
            return what
    embedded: tuple[str, IPv4Address] | None = None
    if ip in _V4_COMPAT:
        embedded = ("an IPv4-compatible address", IPv4Address(int(ip) & 0xFFFFFFFF))
    elif ip in _NAT64:
        embedded = ("a NAT64 address", IPv4Address(int(ip) & 0xFFFFFFFF))
    elif ip.sixtofour is not None:
        embedded = ("a 6to4 address", ip.sixtofour)
    if embedded is not None:
        kind, v4 = embedded
        inner = _category(v4)
        return None if inner is None else f"{kind} embedding {v4}, {inner}"
    return None if ip in _GLOBAL_UNICAST else "outside IPv6 global unicast space"


def check_ip(ip: IPAddress, allowlist: Allowlist, *, port: int | None = None) -> None:
    """Raise BlockedAddress unless ``ip`` is public unicast or the allowlist admits it (on ``port``)."""
    if allowlist.allows_ip(ip, port):
        return
    if (what := _category(ip)) is not None:
        raise BlockedAddress(f"{ip} is {what}")


def _checked_url(url: str | URL, allowlist: Allowlist) -> tuple[str, int | None, bool]:
    """Checks that need no DNS. Returns (host, port, whether the DNS answers still need checking)."""
    if isinstance(url, str):
        # Refuse what different URL parsers read differently, so no other component sees another host.
        if any(c == "\\" or c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
            raise BlockedAddress("URL contains whitespace, control characters or backslashes")
        try:
            url = URL(url)
        except ValueError as exc:
            raise BlockedAddress(f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise BlockedAddress(f"scheme {url.scheme!r} is not allowed; use http or https")
    host, port = url.raw_host, url.port
    if not url.absolute or not host:
        raise BlockedAddress("URL has no host")
    if url.raw_user is not None or url.raw_password is not None:
        # Credentials in the URL would be sent to the upstream, and "a@b" tricks confuse readers.
        raise BlockedAddress("URL must not contain user information")
    if allowlist.allows_host(host, port):
        return host, port, False
    if (ip := parse_host(host)) is not None:
        check_ip(ip, allowlist, port=port)
        return host, port, False
    if not _valid_name(_norm_name(host)):
        raise BlockedAddress(f"{host!r} is not a valid host name")
    _check_name(host)
    return host, port, True


def check_url_at_connect(url: str | URL, allowlist: Allowlist) -> None:
    """The cheap check before each send: scheme, user info, IP literals, blocked names. No DNS."""
    _checked_url(url, allowlist)


def _system_resolve(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


def check_url_at_save(url: str, allowlist: Allowlist, *, resolve: Callable[[str], list[str]] | None = None) -> None:
    """Validate a tenant base URL before storing it; raises BlockedAddress.

    Resolves the host with blocking ``getaddrinfo`` by default: call it through ``asyncio.to_thread`` from
    async code. A name that does not resolve yet is accepted; the connect-time guard checks it later.
    """
    host, port, needs_dns = _checked_url(url, allowlist)
    if not needs_dns:
        return
    try:
        answers = (resolve or _system_resolve)(host)
    except (OSError, UnicodeError):
        return
    for answer in answers:
        check_ip(_answer_ip(answer), allowlist, port=port)


def _answer_ip(answer: str) -> IPAddress:
    try:
        return ip_address(answer.partition("%")[0])
    except ValueError:
        raise BlockedAddress(f"resolver returned {answer!r}, which is not an address") from None


class GuardedResolver(AbstractResolver):
    """Resolves like ``ThreadedResolver``, then refuses the name if any answer is a blocked address.

    Refusing the whole answer (rather than dropping bad records) keeps a half-internal name from working
    on some connects and not others. Allowlisted host names are trusted and not checked.
    """

    def __init__(self, allowlist: Allowlist, inner: AbstractResolver | None = None) -> None:
        self._allowlist = allowlist
        self._inner = inner  # made lazily: ThreadedResolver wants a running event loop

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()
        if self._allowlist.allows_host(host, port):
            return await self._inner.resolve(host, port, family)
        _check_name(host)
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_ip(_answer_ip(result["host"]), self._allowlist, port=port)
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _connect_guard(allowlist: Allowlist) -> aiohttp.ClientMiddlewareType:
    # The no-DNS check depends only on the URL's origin and user info, so its verdict is kept per origin:
    # the hot path pays a dict lookup, not a parse (addresses are still checked at every DNS answer).
    verdicts: dict[tuple[str, str | None, int | None, str | None, str | None], BlockedAddress | None] = {}

    async def guard(req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        url = req.url
        origin = (url.scheme, url.raw_host, url.port, url.raw_user, url.raw_password)
        if origin not in verdicts:
            if len(verdicts) > 10_000:
                verdicts.clear()
            try:
                check_url_at_connect(url, allowlist)
                verdicts[origin] = None
            except BlockedAddress as exc:
                verdicts[origin] = exc
        blocked = verdicts[origin]
        if blocked is not None:
            # The same exception the resolver path produces, so callers handle one type.
            raise aiohttp.ClientConnectorError(req.connection_key, blocked) from blocked
        return await handler(req)

    return guard


def guarded_session(
    allowlist: Allowlist, limit: int = 1000, *, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """The session for tenant upstreams; call inside a running event loop.

    A blocked URL or address surfaces as ``aiohttp.ClientConnectorError`` whose ``os_error`` is a
    ``BlockedAddress``. Send with ``allow_redirects=False``: the guard would refuse a redirect to a blocked
    address, but following any redirect could still carry the upstream key to another host.
    ``resolver`` replaces the system resolver underneath the guard (tests).
    """
    connector = aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=0,
        ttl_dns_cache=300,  # cached answers were checked when they were resolved
        enable_cleanup_closed=True,
        resolver=GuardedResolver(allowlist, resolver),
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        trust_env=False,  # an environment proxy would do the resolving, out of the guard's sight
        middlewares=(_connect_guard(allowlist),),
    )
