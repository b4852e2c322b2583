"""Resolve the true client IP behind trusted proxies (`docs/client-ip.md`).

The rules, in one place so every integration (Django, Flask, ASGI) resolves the same way:

* Nothing configured: the socket peer is the client and forwarding headers are ignored, with a one-time
  `ForwardedHeaderIgnoredWarning` when they arrive.
* Peer outside `trusted_proxies`: the same, because anyone can write those headers.
* Peer trusted: the hops are walked **right to left**; the first untrusted valid address is the client.
  A malformed hop stops the walk and the last trusted hop is the client, so an address written by the
  client itself (anything left of the first untrusted hop) is never returned.

Membership tests use integer masks precomputed at configuration time plus a small LRU cache, so the
per-request path never builds an `ipaddress` object (measured in `docs/performance.md`).
"""

from __future__ import annotations

import _socket  # socket's inet_pton for ~0.5 ms of import instead of ~3.5 ms (see _ip.py)
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias

from graffer_secevents._errors import ConfigurationError, ForwardedHeaderIgnoredWarning, warn_once
from graffer_secevents._ip import normalize_ip

__all__ = [
    "ForwardedHeaderIgnoredWarning",
    "TrustedProxies",
    "resolve_client_ip",
]

if TYPE_CHECKING:
    import ipaddress  # imported where trusted_proxies entries are parsed: configuration time only

    _IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# Without a hop count, a walk through more trusted hops than this stops there: no real deployment has 32
# proxies, and the bound keeps a multi-kilobyte forged header from costing more than a few microseconds.
_MAX_WALK: Final = 32
_CACHE_SIZE: Final = 512  # keys are attacker-chosen strings, so the cache must stay bounded
_ALLOWED_ENTRY: Final = (
    "an IP address or CIDR, e.g. '10.0.0.0/8', '192.168.1.5' or '2001:db8::/32', "
    "or 'unix' (a unix socket peer)"
)


class _Disagree:
    """Marks a position where `X-Forwarded-For` and `Forwarded` name different addresses."""


_DISAGREE: Final = _Disagree()
_Hop: TypeAlias = str | _Disagree | None  # a normalised address, None for a malformed hop, or a disagreement


_IGNORED_MESSAGE: Final = (
    "X-Forwarded-For/Forwarded header ignored: {why}, so the socket peer address is used as the client IP. "
    "If this app runs behind a proxy, configure trusted_proxies=[CIDR, ...] (or SECEVENTS_TRUSTED_PROXIES) "
    "and/or trusted_hops=N. This warning is given once per process."
)
_UNIX_MESSAGE: Final = (
    "X-Forwarded-For/Forwarded header ignored: the request came over a unix socket, whose peer has no "
    "address trusted_proxies can check, so no client IP is recorded. If your proxy connects over this "
    "socket, add 'unix' to trusted_proxies (e.g. trusted_proxies=['unix', '10.0.0.0/22']) or use "
    "trusted_hops=N. This warning is given once per process."
)
_DISAGREE_MESSAGE: Final = (
    "X-Forwarded-For and Forwarded name different client addresses; the last hop both agree on is used. "
    "Make your proxy set one of them and strip the other. This warning is given once per process."
)


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Parsed, validated trusted-proxy configuration. Immutable; build it with `from_config`.

    Attributes:
        networks: the trusted networks; empty when only a hop count is configured.
        hops: trust exactly this many proxies (the peer counts as the first), or `None` for no limit.

    Example:
        >>> proxies = TrustedProxies.from_config("10.0.0.0/8, 2001:db8::/32", None)
        >>> proxies.is_trusted("10.1.2.3"), proxies.is_trusted("203.0.113.7")
        (True, False)
    """

    networks: tuple[_IPNetwork, ...]
    hops: int | None
    unix: bool = False
    """The entry `"unix"`: a peer with no address (a unix socket, which only local processes can reach) is a
    trusted proxy, as the proxy in front of a server bound to a socket file is."""
    _lookup: Callable[[str], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        v4 = tuple((int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 4)
        v6 = tuple((int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 6)

        def lookup(ip: str) -> bool:
            # inet_pton + integer masks: ~0.4 µs against ~3 µs for ipaddress objects.
            try:
                if ":" in ip:
                    value, table = int.from_bytes(_socket.inet_pton(_socket.AF_INET6, ip)), v6
                else:
                    value, table = int.from_bytes(_socket.inet_pton(_socket.AF_INET, ip)), v4
            except (OSError, ValueError):
                return False
            return any(value & mask == network for network, mask in table)

        object.__setattr__(self, "_lookup", functools.lru_cache(maxsize=_CACHE_SIZE)(lookup))

    @classmethod
    def from_config(cls, cidrs: Iterable[str] | str | None, hops: int | None) -> TrustedProxies | None:
        """Validate `trusted_proxies` / `trusted_hops` settings.

        Args:
            cidrs: CIDRs or single addresses (`"10.0.0.0/8"`, `"192.168.1.5"`, `"2001:db8::/32"`), as an
                iterable or as one comma-separated string (the `SECEVENTS_TRUSTED_PROXIES` form). An empty
                string or iterable means "not configured". IPv4-mapped IPv6 entries are stored as IPv4,
                because client addresses are normalised that way.
            hops: trust exactly this many proxies, counting the socket peer as the first. With `cidrs`
                too, the peer must be in `cidrs` *and* at most `hops` hops are trusted. Without
                `cidrs` the peer is not checked (like werkzeug's `ProxyFix`): only use it when the app
                cannot be reached except through those proxies.

        Returns:
            The configuration, or `None` when neither `cidrs` nor `hops` is given.

        Raises:
            ConfigurationError: an entry is empty (e.g. a trailing comma), not an address or CIDR, has host
                bits set, or trusts every address (`"*"`, `0.0.0.0/0`, `::/0`); or `hops` is not an
                int >= 1 (`True` is refused, not read as 1).

            The entry `"unix"` trusts a peer with no address: a unix socket (see `unix`).

        Example:
            >>> TrustedProxies.from_config(None, 1)
            TrustedProxies(networks=(), hops=1, unix=False)
            >>> TrustedProxies.from_config("", None) is None
            True
            >>> TrustedProxies.from_config("unix, 10.0.0.0/8", None).unix
            True
        """
        cidrs, unix = _take_unix(cidrs)
        networks = _parse_networks(cidrs)
        checked_hops = _check_hops(hops)
        if not networks and checked_hops is None and not unix:
            return None
        return cls(networks=networks, hops=checked_hops, unix=unix)

    def is_trusted(self, ip: str) -> bool:
        """Return whether a normalised address is a trusted proxy.

        With only a hop count configured every address is trusted: position alone limits the walk.
        Invalid text is never trusted.

        Example:
            >>> TrustedProxies.from_config(["192.168.1.5"], None).is_trusted("192.168.1.5")
            True
        """
        if not self.networks and not self.unix:
            return True
        return self._lookup(ip)


_UNIX_ENTRY: Final = "unix"


def _take_unix(cidrs: Iterable[str] | str | None) -> tuple[Iterable[str] | str | None, bool]:
    """Split the `"unix"` entries off the CIDRs: (the rest, whether one was there)."""
    if isinstance(cidrs, str):
        if _UNIX_ENTRY not in cidrs.lower():
            return cidrs, False
        parts = cidrs.split(",")
        rest = [p for p in parts if p.strip().lower() != _UNIX_ENTRY]
        return ",".join(rest), len(rest) != len(parts)
    if cidrs is None:
        return None, False
    try:
        entries = list(cidrs)
    except TypeError:
        return cidrs, False  # _parse_networks says what is wrong
    rest_entries = [e for e in entries if not (isinstance(e, str) and e.strip().lower() == _UNIX_ENTRY)]
    return rest_entries, len(rest_entries) != len(entries)


def _parse_networks(cidrs: Iterable[str] | str | None) -> tuple[_IPNetwork, ...]:
    if cidrs is None:
        return ()
    if isinstance(cidrs, str):
        if not cidrs.strip():  # SECEVENTS_TRUSTED_PROXIES= (set but empty) means "not configured"
            return ()
        entries: list[object] = list(cidrs.split(","))
    else:
        try:
            entries = list(cidrs)
        except TypeError:
            raise ConfigurationError(
                f"trusted_proxies must be a list of CIDRs or a comma-separated string, got "
                f"{type(cidrs).__name__}; each entry is {_ALLOWED_ENTRY}"
            ) from None
    networks: dict[_IPNetwork, None] = {}  # a dict keeps order while dropping duplicates
    for position, entry in enumerate(entries, start=1):
        networks[_parse_network(entry, position)] = None
    return tuple(networks)


def _parse_network(entry: object, position: int) -> _IPNetwork:
    if not isinstance(entry, str):
        raise ConfigurationError(
            f"trusted_proxies entry {position} is a {type(entry).__name__}; each entry is {_ALLOWED_ENTRY}"
        )
    text = entry.strip()
    if not text:
        raise ConfigurationError(
            f"trusted_proxies entry {position} is empty (a stray or trailing comma?); "
            f"each entry is {_ALLOWED_ENTRY}"
        )
    shown = repr(text[:100])
    wildcard = (
        f"trusted_proxies entry {shown} trusts every address, so any client could forge its IP "
        "(uvicorn's forwarded_allow_ips='*' pitfall). List your proxies' CIDRs instead, or use "
        "trusted_hops=N if every request passes through exactly N proxies"
    )
    if text == "*":
        raise ConfigurationError(wildcard)
    import ipaddress

    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            suggestion = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ConfigurationError(f"trusted_proxies entry {shown} is not {_ALLOWED_ENTRY}") from None
        raise ConfigurationError(
            f"trusted_proxies entry {shown} has host bits set; did you mean '{suggestion}'?"
        ) from None
    if network.prefixlen == 0:
        raise ConfigurationError(wildcard)
    v4_mapped = ipaddress.IPv6Network("::ffff:0:0/96")
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(v4_mapped):
        # normalize_ip shows ::ffff:a.b.c.d as a.b.c.d, so the entry must be IPv4 to ever match.
        mapped = int(network.network_address) & 0xFFFFFFFF
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _check_hops(hops: object) -> int | None:
    if hops is None:
        return None
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 1:
        raise ConfigurationError(
            f"trusted_hops must be an int >= 1 (how many proxies sit in front of the app), got {hops!r}"
        )
    return hops


def resolve_client_ip(
    peer: str | None,
    *,
    x_forwarded_for: str | None = None,
    forwarded: str | None = None,
    trusted: TrustedProxies | None,
) -> str | None:
    """Return the normalised client IP of a request, or `None` when it cannot be known.

    With `trusted=None`, or a peer outside the trusted networks, the peer is the client and the headers
    are ignored (one `ForwardedHeaderIgnoredWarning` per process). Otherwise the hops are walked
    right to left: trusted addresses are skipped and the first untrusted valid one is the client; with a
    hop count, the address that many positions left of the peer is the client. A malformed hop
    (`unknown`, `_hidden`, an empty entry, anything that is not an IP) stops the walk, and so does the
    end of the chain: the last trusted hop is then the client. Without a hop count at most 32 hops are
    walked.

    Header precedence: the two headers are equal sources, not alternatives. When only one is present (or
    `Forwarded` has no `for=`), it is walked. When both are, they are walked in step and a hop counts
    only if both name the same address; where they differ, or one runs out, the walk stops. Preferring
    either one would let a client forge the client IP behind any proxy that maintains only the other (most
    proxies append `X-Forwarded-For` and pass a client's `Forwarded` through untouched); in step, a
    forged header can only make the result less precise (at worst the peer's address), never
    attacker-chosen.

    Args:
        peer: the socket peer (`REMOTE_ADDR`, ASGI `scope["client"][0]`). A unix socket (`None`, an
            empty string, waitress's `localhost`, uWSGI's `0.0.0.0`) gives `None`, unless trust is
            positional (a hop count and no networks) or `trusted_proxies` has the `"unix"` entry; then the
            headers are walked from it. Any other invalid text gives `None`.
        x_forwarded_for: the raw `X-Forwarded-For` value, several headers joined with `","`.
        forwarded: the raw RFC 7239 `Forwarded` value, several headers joined with `","`.
        trusted: the configuration from `TrustedProxies.from_config`, or `None`.

    Returns:
        A normalised address (no port or brackets, IPv4-mapped IPv6 shown as IPv4), or `None`. Never
        raises, whatever the header text.

    Example:
        >>> proxies = TrustedProxies.from_config(["10.0.0.0/8"], None)
        >>> resolve_client_ip("10.0.0.2", x_forwarded_for="6.6.6.6, 203.0.113.7, 10.0.0.1", trusted=proxies)
        '203.0.113.7'
    """
    has_headers = bool(x_forwarded_for and not x_forwarded_for.isspace()) or bool(
        forwarded and not forwarded.isspace()
    )
    peer_ip = normalize_ip(peer) if peer else None
    if peer_ip in _NO_PEER_ADDRESS:
        peer_ip = None  # uWSGI's REMOTE_ADDR on a unix socket: no connection comes from it
    if trusted is None:
        if has_headers and not _check_rewritten(peer_ip, x_forwarded_for):  # else "ignored" would be false
            warn_once(
                "ignored",
                _IGNORED_MESSAGE.format(why="no trusted proxies are configured"),
                category=ForwardedHeaderIgnoredWarning,
                stacklevel=3,
            )
        return peer_ip
    if peer_ip is None:
        # A peer we cannot check is only acceptable when it has no address at all (a unix socket, which only
        # local processes can reach) and trust is positional, or the "unix" entry trusts such peers.
        if not _is_unix_peer(peer):
            return None
        if trusted.networks and not trusted.unix:
            if has_headers:
                warn_once("unix", _UNIX_MESSAGE, category=ForwardedHeaderIgnoredWarning, stacklevel=3)
            return None
    elif not trusted.is_trusted(peer_ip):
        if has_headers and not _check_rewritten(peer_ip, x_forwarded_for):  # else "ignored" would be false
            warn_once(
                "ignored",
                _IGNORED_MESSAGE.format(why="the peer is not a trusted proxy"),
                category=ForwardedHeaderIgnoredWarning,
                stacklevel=3,
            )
        return peer_ip
    if not has_headers:
        return peer_ip
    window = trusted.hops or _MAX_WALK
    if x_forwarded_for and not forwarded:  # the common case, kept free of the two-header machinery
        return _walk(
            peer_ip, map(normalize_ip, reversed(x_forwarded_for.rsplit(",", window)[-window:])), trusted
        )
    return _walk(peer_ip, _hops(x_forwarded_for, forwarded, window), trusted)


_REWRITTEN_MESSAGE: Final = (
    "graffer_secevents: the peer address this library was given is the last X-Forwarded-For hop: a server "
    "or middleware in front of it (Tornado's HTTPServer(xheaders=True), werkzeug's ProxyFix around the "
    "middleware, a server's proxy-headers option) seems to have replaced the peer with a forwarded address "
    "already, which may believe a forged header from any client. Let one component decide: turn that "
    "option off and configure trusted_proxies here. See the client IP documentation. This warning is given "
    "once per process."
)


def _check_rewritten(peer_ip: str | None, x_forwarded_for: str | None) -> bool:
    """A peer equal to the last `X-Forwarded-For` hop: a proxy appends the address of whoever connected to
    it, never its own, so the "peer" is most likely a hop someone already applied, out of this library's
    sight (an executor thread, a middleware around it). Said once; never the header's value. Whether it
    was such a peer: the "header ignored" warning, which says the peer is used instead of the header, would
    then be false (the peer is the header's address), so it is not given for that request."""
    if peer_ip is None or not x_forwarded_for:
        return False
    if normalize_ip(x_forwarded_for.rsplit(",", 1)[-1]) == peer_ip:
        warn_once("rewritten", _REWRITTEN_MESSAGE, stacklevel=4)
        return True
    return False


_NO_PEER_ADDRESS: Final = frozenset({"0.0.0.0", "::"})  # noqa: S104 - compared with, never bound to
"""The unspecified addresses: no connection comes from them, so a server that gives one as the peer had
none to give (uWSGI on a unix socket gives `0.0.0.0`)."""


def _is_unix_peer(peer: str | None) -> bool:
    """A peer that names no address: a unix socket. ASGI servers give no `client` (uvicorn, hypercorn,
    granian), gunicorn an empty `REMOTE_ADDR`, waitress the text `localhost` (never an address in a
    `REMOTE_ADDR`, which CGI defines as one), uWSGI the unspecified address `0.0.0.0`."""
    return not peer or peer.isspace() or peer == "localhost" or normalize_ip(peer) in _NO_PEER_ADDRESS


def _walk(current: str | None, hops: Iterable[_Hop], trusted: TrustedProxies) -> str | None:
    limit = trusted.hops
    # Only a hop count (no networks, no "unix"): every hop is trusted, position alone limits the walk.
    lookup = trusted._lookup if trusted.networks or trusted.unix else None
    consumed = 1  # the peer is the first trusted proxy
    for hop in hops:
        if hop is None:
            return current
        if isinstance(hop, _Disagree):
            warn_once("disagree", _DISAGREE_MESSAGE, category=ForwardedHeaderIgnoredWarning, stacklevel=4)
            return current
        if (limit is not None and consumed >= limit) or (lookup is not None and not lookup(hop)):
            return hop
        current = hop
        consumed += 1
    return current


def _hops(xff: str | None, forwarded: str | None, window: int) -> Iterator[_Hop]:
    """Yield the hops right to left, at most `window` of them."""
    forwarded_hops = _forwarded_hops(forwarded, window) if forwarded else None
    if forwarded_hops is None:
        if xff:
            # Lazily: the walk usually ends after one or two hops, so most entries are never parsed.
            return map(normalize_ip, reversed(xff.rsplit(",", window)[-window:]))
        return iter(())
    if not xff or xff.isspace():
        return iter(forwarded_hops)
    xff_hops = [normalize_ip(raw) for raw in reversed(xff.rsplit(",", window)[-window:])]
    return _in_step(xff_hops, forwarded_hops)


def _in_step(left: list[str | None], right: list[str | None]) -> Iterator[_Hop]:
    for a, b in zip(left, right, strict=False):
        yield a if a == b else _DISAGREE
    if len(left) != len(right):
        yield _DISAGREE


def _forwarded_hops(header: str, window: int) -> list[str | None] | None:
    """Return the `for=` addresses right to left, or `None` when no element has `for=`."""
    # Splitting on every comma ignores quoting on purpose: a client's unbalanced quote at the left could
    # otherwise swallow the elements that trusted proxies appended after it. No valid for= holds a comma.
    hops: list[str | None] = []
    seen_for = False
    for element in reversed(header.rsplit(",", window)[-window:]):
        value: str | None = None
        count = 0
        for pair in element.split(";"):
            name, sep, raw = pair.partition("=")
            if sep and name.strip().lower() == "for":
                count += 1
                value = raw.strip()
        if count:
            seen_for = True
        if count != 1 or value is None:  # missing or repeated for= (RFC 7239 §4 allows one)
            hops.append(None)
            continue
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        hops.append(None if '"' in value else normalize_ip(value))
    return hops if seen_for else None
