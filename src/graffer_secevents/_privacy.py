"""Privacy: per-field modes, keyed hashing, and the redaction of secrets in caller metadata (SPEC §3)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final, Literal

from ._errors import ConfigurationError
from ._ip import truncate_ip

__all__ = [
    "DEFAULT_MODES",
    "PRIVACY_FIELDS",
    "REDACTED",
    "Privacy",
    "is_secret_key",
]

Mode = Literal["keep", "hash", "drop", "truncate"]

DEFAULT_MODES: Final[Mapping[str, Mode]] = {
    "usr.id": "keep",
    "target.usr.id": "keep",
    "usr.login": "hash",
    "usr.email": "hash",
    "usr.name": "drop",
    "network.client.ip": "keep",
}
PRIVACY_FIELDS: Final = tuple(DEFAULT_MODES)
_ALLOWED: Final[Mapping[str, tuple[str, ...]]] = {
    field: ("keep", "hash", "drop", "truncate") if field == "network.client.ip" else ("keep", "hash", "drop")
    for field in PRIVACY_FIELDS
}

REDACTED: Final = "[REDACTED]"
_SECRET_WORDS: Final = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "credential",
    "private_key",
)


def is_secret_key(key: str) -> bool:
    """Whether a metadata key's name looks like it holds a secret (``X-Api-Key``, ``db_password``, ...)."""
    folded = key.lower().replace("-", "_")
    return any(word in folded for word in _SECRET_WORDS)


class Privacy:
    """The privacy settings in force, with the hashing key prepared once.

    ``hash`` is ``anon_`` + the first 32 hex characters of HMAC-SHA256 under the configured key, or of plain
    SHA-256 without one (ddtrace's anonymisation format): the same input hashes the same in logs and traces.
    """

    __slots__ = ("_hmac", "keyed", "modes")

    def __init__(self, modes: Mapping[str, str] | None, key: str | bytes | None) -> None:
        merged: dict[str, str] = dict(DEFAULT_MODES)
        for field, mode in (modes or {}).items():
            if field not in _ALLOWED:
                raise ConfigurationError(
                    f"privacy: unknown field {field!r}; the fields are {', '.join(PRIVACY_FIELDS)}"
                )
            if mode not in _ALLOWED[field]:
                raise ConfigurationError(
                    f"privacy[{field!r}]: unknown mode {mode!r}; allowed: {', '.join(_ALLOWED[field])}"
                )
            merged[field] = mode
        self.modes: Mapping[str, str] = merged
        if isinstance(key, str):
            key = key.encode()
        if key is not None and not key:
            raise ConfigurationError(
                "hash_key: an empty key hashes like no key at all; pass a secret or None"
            )
        self.keyed = key is not None
        self._hmac = hmac.new(key, digestmod=hashlib.sha256) if key is not None else None

    def hash(self, value: str) -> str:
        """Return the pseudonym of ``value``: stable for one key, not reversible."""
        data = value.encode("utf-8", "surrogatepass")
        if self._hmac is None:
            return "anon_" + hashlib.sha256(data).hexdigest()[:32]
        mac = self._hmac.copy()
        mac.update(data)
        return "anon_" + mac.hexdigest()[:32]

    def apply(self, field: str, value: str) -> str | None:
        """Apply ``field``'s mode to ``value``; ``None`` means the field is dropped."""
        mode = self.modes[field]
        if mode == "keep":
            return value
        if mode == "hash":
            return self.hash(value)
        if mode == "truncate":
            return truncate_ip(value)
        return None

    def needs_key(self) -> bool:
        """Whether anything is hashed by these settings (the unkeyed fallback then deserves a warning)."""
        return not self.keyed
