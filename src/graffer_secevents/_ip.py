"""IP address validation, normalisation and truncation, cheap enough for the per-event path.

`socket.inet_pton` validates in ~0.3 µs where `ipaddress.ip_address` costs 3.5-12 µs
(measured in `docs/performance.md`), so the common case never builds an `ipaddress` object.
"""

from __future__ import annotations

# _socket, not socket: the same inet_pton/inet_ntop for ~0.5 ms of import instead of ~3.5 ms (socket pulls in
# selectors, array, ...). ipaddress is imported by the one IPv6 truncation that needs it.
import _socket

__all__ = ["normalize_ip", "truncate_ip"]

_MAX_IP_TEXT = 64  # longest useful text: an IPv6 with zone id, brackets and port


def normalize_ip(value: str) -> str | None:
    """Return the canonical text of an IP address, or `None` when `value` is not one.

    Accepts `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443` and IPv4-mapped IPv6
    (shown as IPv4). Whitespace around the value is ignored; anything else invalid gives `None`.
    """
    text = value.strip()
    if not text or len(text) > _MAX_IP_TEXT:
        return None
    if ":" not in text:  # plain IPv4, the common case
        return text if _is_ipv4(text) else None
    if text.count(":") == 1:  # IPv4 with a port
        host, _, port = text.partition(":")
        return host if port.isdigit() and _is_ipv4(host) else None
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        rest = text[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        text = text[1:end]
    if "%" in text:  # a zone id (fe80::1%eth0) says nothing about the client
        text = text.partition("%")[0]
    try:
        packed = _socket.inet_pton(_socket.AF_INET6, text)
    except (OSError, ValueError):
        return None
    if packed[:12] == b"\x00" * 10 + b"\xff\xff":
        return _socket.inet_ntop(_socket.AF_INET, packed[12:])
    return _socket.inet_ntop(_socket.AF_INET6, packed)


def _is_ipv4(text: str) -> bool:
    # inet_pton(AF_INET) rejects leading zeros ambiguity the same way ipaddress does ("01.2.3.4").
    try:
        _socket.inet_pton(_socket.AF_INET, text)
    except (OSError, ValueError):
        return False
    return True


def truncate_ip(ip: str) -> str:
    """Zero the host part of a normalised address: /24 for IPv4, /64 for IPv6."""
    if ":" in ip:
        import ipaddress

        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False).network_address)
    head, _, _ = ip.rpartition(".")
    return f"{head}.0"
