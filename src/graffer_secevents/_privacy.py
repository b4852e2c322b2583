"""Privacy: per-field modes, keyed hashing, and the redaction of secrets in caller metadata.

What each mode does and how to choose: `docs/privacy.md`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
_BLOCK: Final = 64  # SHA-256's block size, for HMAC key padding
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
    """Whether a metadata key's name looks like it holds a secret (`X-Api-Key`, `db_password`, ...)."""
    folded = key.lower().replace("-", "_")
    return any(word in folded for word in _SECRET_WORDS)


class Privacy:
    """The privacy settings in force, with the hashing key prepared once.

    `hash` is `anon_` + the first 32 hex characters of HMAC-SHA256 under the configured key, or of plain
    SHA-256 without one (ddtrace's anonymisation format): the same input hashes the same in logs and traces.
    """

    __slots__ = (
        "_appliers",
        "_inner",
        "_outer",
        "_sha256",
        "apply_email",
        "apply_id",
        "apply_ip",
        "apply_login",
        "apply_name",
        "apply_target_id",
        "keyed",
        "modes",
    )

    def __init__(self, modes: Mapping[str, str] | None, key: str | bytes | None) -> None:
        import hashlib  # ~5 ms of import (OpenSSL): when a configuration is built, not with the package

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
        self._sha256 = hashlib.sha256  # the unkeyed hash, bound here so the package import skips hashlib
        # HMAC-SHA256 (RFC 2104) with the padded key absorbed once: copying the two prepared states per value
        # costs half of hmac.new(...).copy() on the per-event path. A test checks it against the hmac module.
        self._inner = self._outer = None
        if key is not None:
            if len(key) > _BLOCK:
                key = hashlib.sha256(key).digest()
            key = key.ljust(_BLOCK, b"\0")
            self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
            self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        # Each field's mode as a function, chosen once here rather than looked up per event.
        self._appliers = {field: self._applier(field) for field in PRIVACY_FIELDS}
        self.apply_id = self._appliers["usr.id"]
        self.apply_target_id = self._appliers["target.usr.id"]
        self.apply_login = self._appliers["usr.login"]
        self.apply_email = self._appliers["usr.email"]
        self.apply_name = self._appliers["usr.name"]
        self.apply_ip = self._appliers["network.client.ip"]

    def hash(self, value: str) -> str:
        """Return the pseudonym of `value`: stable for one key, not reversible."""
        data = value.encode("utf-8", "surrogatepass")
        inner = self._inner
        if inner is None or self._outer is None:
            return "anon_" + self._sha256(data).hexdigest()[:32]
        inner = inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return "anon_" + outer.hexdigest()[:32]

    def apply(self, field: str, value: str) -> str | None:
        """Apply `field`'s mode to `value`; `None` means the field is dropped."""
        return self._appliers[field](value)

    def _applier(self, field: str) -> Callable[[str], str | None]:
        mode = self.modes[field]
        if mode == "keep":
            return _keep
        if mode == "hash":
            return self.hash
        if mode == "truncate":
            return truncate_ip
        return _drop


def _keep(value: str) -> str:
    return value


def _drop(_value: str) -> None:
    return None
