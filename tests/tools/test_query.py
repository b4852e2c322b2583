"""The log search syntax subset: what each construct matches, what is refused, and hostile input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graffer_secevents._tools.detect.query import compile_query
from graffer_secevents.detect import DetectError

RECORD: dict[str, Any] = {
    "timestamp": "2026-01-01T00:00:00.000Z",
    "message": "authn_login_fail: login failed for a user",
    "service": "Shop-API",
    "env": "prod",
    "status": "warning",
    "evt": {"type": "authn_login_fail", "name": "authentication", "outcome": "failure"},
    "usr": {"id": "42", "exists": False, "roles": ["admin", "ops"]},
    "http": {"status_code": 403, "url_details": {"path": "/admin users"}},
    "network": {"client": {"ip": "2001:db8::1"}},
    "duration": 1.5,
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("@evt.type:authn_login_fail", True),
        ("@evt.type:authn_login_success", False),
        ("@evt.type:AUTHN_LOGIN_FAIL", False),  # attribute values are case-sensitive
        ("@evt.type:authn_*", True),
        ("@evt.type:authn_login_fai?", True),
        ("@evt.type:*success", False),
        ("@usr.exists:false", True),
        ("-@usr.exists:true", True),
        ("NOT @usr.exists:false", False),
        ("@usr.id:42 @evt.outcome:failure", True),  # implicit AND
        ("@usr.id:42 AND @evt.outcome:success", False),
        ("@usr.id:7 OR @evt.outcome:failure", True),
        ("@usr.id:7 OR @evt.outcome:success", False),
        ("@usr.id:42 (@evt.outcome:success OR @evt.type:authn_login_fail)", True),
        ("-(@usr.id:7 OR @usr.id:8)", True),
        ("@evt.outcome:(success OR failure)", True),
        ("@evt.outcome:(success OR denied)", False),
        ("@usr.roles:admin", True),  # an array matches when any element does
        ("@http.status_code:403", True),
        ("@http.status_code:[400 TO 499]", True),
        ("@http.status_code:[400 TO 403]", True),
        ("@http.status_code:{400 TO 403}", False),  # exclusive bounds
        ("@http.status_code:[500 TO *]", False),
        ("@http.status_code:>403", False),
        ("@http.status_code:>=403", True),
        ("@http.status_code:<404", True),
        ("@http.status_code:<=402", False),
        ("@duration:>1", True),
        ('@http.url_details.path:"/admin users"', True),
        ("@http.url_details.path:/admin\\ users", True),
        ('@network.client.ip:"2001:db8::1"', True),
        ("@network.client.ip:2001\\:db8\\:\\:1", True),
        ("@usr.id:*", True),
        ("@usr.email:*", False),
        ("-@usr.email:*", True),
        ("service:shop-api", True),  # reserved attributes (tags in Datadog) ignore case
        ("env:staging", False),
        ("status:warning", True),
        ("source:graffer_secevents", False),  # no ddsource in the record
        ("login", True),  # free text: a word of `message`, any case
        ("LOGIN", True),
        ("logi", False),
        ("log*", True),
        ('"login failed"', True),
        ('"failed login"', False),
        ("*", True),
        ("", True),
    ],
)
def test_a_query_matches_what_datadog_search_would(query: str, expected: bool) -> None:
    assert compile_query(query)(RECORD) is expected


def test_a_flattened_record_is_read_through_dotted_keys() -> None:
    assert compile_query("@evt.type:x")({"evt.type": "x"})


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("@a:b:c", "unescaped ':' in a value (escape it with \\ or quote the value) at position 4"),
        ("(@a:b", "unclosed '(' at position 0"),
        ("@a:b)", "unbalanced ')' at position 4"),
        ("team:security", "tag or attribute 'team:'"),
        ("@a:[1 TO x]", "non-numeric bound"),
        ("@a:[1 10]", "[low TO high]"),
        ("@a:[1 TO 10", "unclosed range"),
        ("@a:b && @c:d", "'&&'"),
        ("@a:b || @c:d", "'||'"),
        ("-", "nothing to negate"),
        ("NOT", "missing term"),
        ("@a:b AND", "missing term"),
        ("OR @a:b", "OR without a term"),
        ("@a:", "without a value"),
        ("@a", "without ':value'"),
        ("@a:>x", "needs a number"),
        ("@a:(x OR", "unclosed '(' in a value group"),
        ('@a:"open', "unclosed quote"),
        ("x=y", "unescaped '='"),
        ("@a..b:c", "malformed attribute name"),
        ("@a:b\\", "trailing backslash"),
        ("(" * 60 + "x" + ")" * 60, "nesting deeper than"),
    ],
)
def test_unsupported_or_broken_syntax_is_a_detect_error_naming_it(query: str, named: str) -> None:
    with pytest.raises(DetectError) as caught:
        compile_query(query)
    assert named in str(caught.value)


_ALPHABET = st.sampled_from(
    [*list('@abc.:*?\\"()[]{}<>=!-_ 0123456789TONRAD\t\n“”&|/~^'), "AND", "OR", "NOT", " TO "]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_ALPHABET, max_size=30).map("".join)))
def test_hostile_queries_raise_only_detect_error(query: str) -> None:
    try:
        matcher = compile_query(query)
    except DetectError:
        return
    assert isinstance(matcher(RECORD), bool)
    assert isinstance(matcher({}), bool)
