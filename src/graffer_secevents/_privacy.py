"""Privacy: per-field modes, keyed hashing, and the redaction of secrets in caller metadata.

What each mode does and how to choose: `docs/privacy.md`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final, Literal

from ._errors import ConfigurationError
from ._ip import truncate_ip

__all__ = [
    "DEFAULT_MODES",
    "MAX_SHAPES_CHECKED",
    "PRIVACY_FIELDS",
    "REDACTED",
    "Privacy",
    "is_email",
    "is_secret_key",
    "secret_kinds",
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
    known = _secret_keys.get(key)
    if known is None:
        folded = key.lower().replace("-", "_")
        known = any(word in folded for word in _SECRET_WORDS)
        if len(_secret_keys) >= _KEYS_REMEMBERED:
            _secret_keys.clear()
        if type(key) is str and len(key) <= _KEY_REMEMBERED_LENGTH:
            _secret_keys[key] = known
    return known


# Metadata keys repeat from event to event: the answer for the last few thousand is remembered.
_secret_keys: dict[str, bool] = {}
_KEYS_REMEMBERED: Final = 4096
_KEY_REMEMBERED_LENGTH: Final = 64


class Privacy:
    """The privacy settings in force, with the hashing key prepared once.

    `hash` is `anon_` + the first 32 hex characters of HMAC-SHA256 under the configured key, or of plain
    SHA-256 without one (ddtrace's anonymisation format): the same input hashes the same in logs and traces.
    """

    __slots__ = (
        "_appliers",
        "_inner",
        "_outer",
        "_scrubbed",
        "_scrubbed_generic",
        "_scrubbed_metadata",
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
        # What `scrub` found in recent values (user agents and paths repeat across requests): value -> result.
        self._scrubbed: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._scrubbed_generic: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._scrubbed_metadata: dict[str, tuple[str, tuple[str, ...]]] = {}  # caller values: their own room
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

    def scrub_metadata(self, field: str, text: str, notes: list[str]) -> str:
        """`scrub` for a caller's metadata value (no generic tokens: caller ids look random), with a cache
        of its own so that varied metadata does not push paths and user agents out."""
        if len(text) < _MIN_SHAPE and "@" not in text and "=" not in text:
            return text  # short codes: no shape fits (an e-mail needs its @, a pair its =)
        return self.scrub(field, text, notes, False, self._scrubbed_metadata)

    def scrub(
        self,
        field: str,
        text: str,
        notes: list[str],
        generic: bool = True,
        cache: dict[str, tuple[str, tuple[str, ...]]] | None = None,
    ) -> str:
        """`text` with every secret shape replaced, each kind replaced noted once in `notes` under `field`.

        Tokens (JWTs, well-known API-key formats, a credential after `Bearer`/`Basic`, the value of a
        secret-named `name=value` pair, a Django password-reset token) become `[REDACTED]`; e-mail addresses
        (`@` or `%40`) follow the `usr.email` mode, so they hash like `usr.email`. `generic` adds long
        random tokens (path segments, request ids), left out where ordinary values are long random ids (user
        ids) or build numbers (user agents). The set and its cost: docs/privacy.md, "Secrets by shape".

        Results are remembered for the last few hundred values (user agents and paths repeat across
        requests), so a value seen before costs one dict lookup.
        """
        if cache is None:
            cache = self._scrubbed_generic if generic else self._scrubbed
        hit = cache.get(text)
        if hit is None:
            hit = _scan(text, generic, self)
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[text] = hit
        result, found = hit
        if found:
            notes.extend(f"{field}: {note}" for note in found)
        return result

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


# --- secrets by shape ---------------------------------------------------------------------------------------
# Request fields and identities are written by the library itself (a path, a user agent, a request id, the
# path a 403 copies into `evt.resource`, a user's id), so a secret there is ours to catch: by its shape, not
# only by a key's name. The set is conservative and documented (docs/privacy.md, "Secrets by shape"): each
# pattern is anchored on a prefix or a structure that ordinary paths and user agents do not have.

_CANDIDATE: Final = re.compile(r"[A-Za-z0-9_-]{16,}").finditer
"""Runs of 16+ letters, digits, `-` and `_`: every token shape below is one (a JWT's header is), and ordinary
user agents and paths have few. One character-class scan, the cheapest `re` can do."""
_PREFIXED: Final = re.compile(
    r"(?P<github_token>gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"
    r"|(?P<gitlab_token>glpat-[A-Za-z0-9_-]{20,})"
    r"|(?P<slack_token>xox[abposr]-[A-Za-z0-9-]{10,})"
    r"|(?P<aws_access_key_id>(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9]))"
    r"|(?P<stripe_key>[rs]k_(?:live|test)_[A-Za-z0-9]{16,})"
    r"|(?P<google_api_key>AIza[A-Za-z0-9_-]{35})"
    r"|(?P<npm_token>npm_[A-Za-z0-9]{36})"
    r"|(?P<pypi_token>pypi-[A-Za-z0-9_-]{50,})"
).search
_JWT: Final = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){0,3}").match
_DJANGO_RESET: Final = re.compile(r"[0-9a-z]{1,13}-[0-9a-f]{20}(?:[0-9a-f]{12})?").fullmatch
_EMAILS: Final = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}(?:@|%40)[A-Za-z0-9-]{1,63}"
    r"(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
).finditer
_PAIRS: Final = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]{1,64})=([^&;/\s,\"'=]+)").finditer
_SCHEMES: Final = re.compile(
    r"(?<![A-Za-z])(?:[Bb]earer|BEARER|[Bb]asic|BASIC)\s+([A-Za-z0-9._~+/=-]{6,})"
).finditer
_SCHEME_WORDS: Final = ("earer", "EARER", "asic", "ASIC")
_RUNS: Final = re.compile(r"[A-Z]+|[a-z]+|[0-9]+").findall
_PIECES: Final = re.compile(r"[A-Za-z0-9]{16,}").findall
_LOWER_RUNS: Final = re.compile(r"[a-z]+").findall
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_MIN_HEX_TOKEN: Final = 40  # 32 hex digits are a UUID or a request id, not a secret
_KINDS: Final = {
    "jwt": "a JWT",
    "scheme": "a credential after an authorization scheme",
    "github_token": "a GitHub token",
    "gitlab_token": "a GitLab token",
    "slack_token": "a Slack token",
    "aws_access_key_id": "an AWS access key id",
    "stripe_key": "a Stripe secret key",
    "google_api_key": "a Google API key",
    "npm_token": "an npm token",
    "pypi_token": "a PyPI token",
    "django_reset_token": "a Django password-reset token",
    "pair": "the value of a secret-named parameter",
    "token": "a long random token",
}
_CACHE_SIZE: Final = 512
_MIN_SHAPE: Final = 16  # every token shape is a run of 16 or more
MAX_SHAPES_CHECKED: Final = 16  # per field and kind: what one hostile value can cost (docs/privacy.md)
_SECRET_NAME: Final = re.compile(
    r"(?i)password|passwd|secret|token|api_?key|authori[sz]ation|cookie|session|credential|private_?key"
    r"|^(?:sid|phpsessid|sig|signature|code|key|auth|jwt|otp|pin|pwd|pass)$"
).search


def _random_token(run: str) -> bool:
    """Whether a run of letters, digits, `-` and `_` holds a random-looking token rather than words or an id.

    Read as one piece when at most one character in ten is a `-` or `_` (random base64url: about one in
    thirty; slugs: one in six), else piece by piece. A piece of 16+ letters and digits is a token when it is
    hex of 40 digits or more (a UUID's or a request id's 32 are not secrets); or has both cases and digits,
    switches class (upper, lower, digit) at least 35 times in 100 characters and its lower-case runs average
    at most 2.4 letters (random base64: about 1.7; CamelCase words: 3 and more); or is in one case with
    digits, 24+ characters switching 30 times in 100 (random: 40; words with a number: a few).
    """
    separators = run.count("-") + run.count("_")
    pieces = [run.replace("-", "").replace("_", "")] if separators * 10 <= len(run) else _PIECES(run)
    for piece in pieces:
        if len(piece) < 16 or piece.isalpha() or piece.isdigit():
            continue
        if all(c in _HEX for c in piece):
            if len(piece) >= _MIN_HEX_TOKEN:
                return True
            continue
        switches = len(_RUNS(piece)) - 1
        if not piece.islower() and not piece.isupper():  # both cases and digits
            lower = _LOWER_RUNS(piece)
            if switches * 100 >= 35 * len(piece) and sum(map(len, lower)) * 10 <= 24 * max(1, len(lower)):
                return True
        elif len(piece) >= 24 and switches * 100 >= 30 * len(piece):
            return True
    return False


def _token_spans(text: str, generic: bool, spans: list[tuple[int, int, str]]) -> int:
    """Add the spans of tokens in `text`; return where checking stopped (`len(text)`: the whole text)."""
    for checked, match in enumerate(_CANDIDATE(text)):
        start = match.start()
        if checked == MAX_SHAPES_CHECKED:
            return start
        run = match.group()
        if run.startswith("eyJ") and text[match.end() : match.end() + 1] == ".":
            jwt = _JWT(text, start)
            if jwt is not None:
                spans.append((start, jwt.end(), "jwt"))
                continue
        prefixed = _PREFIXED(run)
        if prefixed is not None:
            spans.append((start + prefixed.start(), start + prefixed.end(), prefixed.lastgroup or "token"))
        elif _DJANGO_RESET(run) is not None:
            spans.append((start, match.end(), "django_reset_token"))
        elif generic and _random_token(run):
            spans.append((start, match.end(), "token"))
    return len(text)


def _scan(text: str, generic: bool, privacy: Privacy) -> tuple[str, tuple[str, ...]]:
    """`text` with its secret shapes replaced, and what was replaced (see `Privacy.scrub`).

    Bounded work: at most `MAX_SHAPES_CHECKED` candidates of each kind are checked; past them, the rest
    of the text is replaced by `[REDACTED]` (so much that looks like secrets is redacted, not risked).
    """
    spans: list[tuple[int, int, str]] = []
    stop = len(text)
    if "@" in text or "%40" in text:
        for found_, m in enumerate(_EMAILS(text)):
            if found_ == MAX_SHAPES_CHECKED:
                stop = m.start()
                break
            spans.append((m.start(), m.end(), "email"))
    if "=" in text:
        for found_, m in enumerate(_PAIRS(text)):
            if found_ == MAX_SHAPES_CHECKED:
                stop = min(stop, m.start())
                break
            if _SECRET_NAME(m.group(1)) is not None:
                spans.append((m.start(2), m.end(2), "pair"))
    if any(word in text for word in _SCHEME_WORDS):
        for found_, m in enumerate(_SCHEMES(text)):
            if found_ == MAX_SHAPES_CHECKED:
                stop = min(stop, m.start())
                break
            spans.append((m.start(1), m.end(1), "scheme"))
    stop = min(stop, _token_spans(text, generic, spans))
    if not spans and stop == len(text):
        return text, ()
    spans.sort()
    parts: list[str] = []
    found: list[str] = []
    end = 0
    for start, finish, kind in spans:
        if start < end or start >= stop:  # inside a span already replaced, or past the checked part
            continue
        whole = text[start:finish]
        if kind == "email":
            address = whole if "@" in whole else whole.replace("%40", "@")
            shown = privacy.apply_email(address)
            if shown == address:
                continue
            found.append("an e-mail address hashed" if shown is not None else "an e-mail address dropped")
            replacement = shown if shown is not None else REDACTED
        else:
            found.append(f"{_KINDS[kind]} redacted")
            replacement = REDACTED
        parts.append(text[end:start])
        parts.append(replacement)
        end = finish
    if stop < len(text):
        found.append(f"more than {MAX_SHAPES_CHECKED} possible secrets, the rest redacted unchecked")
        parts.append(text[end : max(end, stop)])
        parts.append(REDACTED)
    elif not found:
        return text, ()
    else:
        parts.append(text[end:])
    return "".join(parts), tuple(dict.fromkeys(found))


def secret_kinds(text: str) -> tuple[str, ...]:
    """The token shapes in `text` (generic random tokens included), named as in the notes; e-mails aside."""
    spans: list[tuple[int, int, str]] = []
    _token_spans(text, True, spans)
    return tuple(dict.fromkeys(_KINDS[kind] for _, _, kind in spans))


def is_email(text: str) -> bool:
    """Whether an identity is an e-mail address (`local@domain.tld`), which is then written as `usr.email`."""
    return "@" in text and _EMAIL(text) is not None


_EMAIL: Final = re.compile(
    r"[^@\s]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
).fullmatch
