"""Client IP resolution behind trusted proxies and request id validation (docs/client-ip.md)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graffer_secevents._client_ip import TrustedProxies, resolve_client_ip
from graffer_secevents._errors import ConfigurationError, ForwardedHeaderIgnoredWarning, SecEventsWarning
from graffer_secevents._errors import reset_warnings as _reset_warning_state
from graffer_secevents._ip import normalize_ip
from graffer_secevents._request_id import REQUEST_ID_PATTERN, accept_request_id, new_request_id

CLIENT = "203.0.113.7"
FORGED = "6.6.6.6"
TRUSTED_CIDRS = ["10.0.0.0/8", "2001:db8:ffff::/48"]


@pytest.fixture(autouse=True)
def _fresh_warning_state() -> Iterator[None]:
    _reset_warning_state()
    yield
    _reset_warning_state()


def _proxies(cidrs: list[str] | str | None = None, hops: int | None = None) -> TrustedProxies:
    config = TrustedProxies.from_config(TRUSTED_CIDRS if cidrs is None and hops is None else cidrs, hops)
    assert config is not None
    return config


def _quietly(peer: str | None, **kwargs: object) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ForwardedHeaderIgnoredWarning)
        return resolve_client_ip(peer, **kwargs)  # type: ignore[arg-type]


# --- nothing configured, or an untrusted peer: headers are ignored ---------------------------------------


def test_unconfigured_client_is_the_normalised_peer() -> None:
    assert resolve_client_ip("203.0.113.7:5555", trusted=None) == CLIENT


def test_unconfigured_ignores_forged_x_forwarded_for_and_warns() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning, match="no trusted proxies are configured"):
        assert resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=None) == CLIENT


def test_unconfigured_ignores_forged_forwarded_and_warns() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning, match="trusted_proxies"):
        assert resolve_client_ip(CLIENT, forwarded=f"for={FORGED}", trusted=None) == CLIENT


def test_untrusted_peer_ignores_forged_x_forwarded_for_and_warns() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning, match="the peer is not a trusted proxy"):
        assert resolve_client_ip(CLIENT, x_forwarded_for=f"{FORGED}, 10.0.0.1", trusted=_proxies()) == CLIENT


def test_untrusted_peer_ignores_forged_forwarded_and_warns() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning, match="the peer is not a trusted proxy"):
        assert resolve_client_ip(CLIENT, forwarded=f"for={FORGED}", trusted=_proxies()) == CLIENT


def test_ignored_header_warning_is_given_once_per_process() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning):
        resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=None)
        resolve_client_ip(CLIENT, forwarded=f"for={FORGED}", trusted=_proxies())


def test_ignored_header_warning_is_given_again_after_reset() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning):
        resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=None)
    _reset_warning_state()
    with pytest.warns(ForwardedHeaderIgnoredWarning):
        resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=None)


def test_ignored_header_warning_can_be_silenced_by_category() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=ForwardedHeaderIgnoredWarning)
        assert resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=None) == CLIENT


def test_ignored_header_warning_points_at_the_caller() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning) as record:
        resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=None)
    assert record[0].filename == __file__


def test_ignored_header_warning_does_not_echo_header_values() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning) as record:
        resolve_client_ip(CLIENT, x_forwarded_for="<script>", trusted=None)
    assert "<script>" not in str(record[0].message)
    assert CLIENT not in str(record[0].message)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_absent_or_blank_header_does_not_warn(header: str | None) -> None:
    assert resolve_client_ip(CLIENT, x_forwarded_for=header, forwarded=header, trusted=None) == CLIENT


# --- a trusted peer: walk right to left ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "xff"),
    [
        ("10.0.0.1", CLIENT),
        ("10.0.0.2", f"{CLIENT}, 10.0.0.1"),
        ("10.0.0.3", f"{CLIENT}, 10.0.0.1, 10.0.0.2"),
    ],
    ids=["one-proxy", "two-proxies", "three-proxies"],
)
def test_chain_through_trusted_proxies_yields_first_untrusted_hop(peer: str, xff: str) -> None:
    assert resolve_client_ip(peer, x_forwarded_for=xff, trusted=_proxies()) == CLIENT


@pytest.mark.parametrize("proxies", [1, 2, 3])
def test_forged_prefix_left_of_the_client_is_never_returned(proxies: int) -> None:
    hops = ", ".join(f"10.0.0.{n}" for n in range(1, proxies))
    xff = ", ".join(x for x in (FORGED, "10.0.0.99", CLIENT, hops) if x)
    assert resolve_client_ip(f"10.0.0.{proxies}", x_forwarded_for=xff, trusted=_proxies()) == CLIENT


def test_trusted_peer_without_headers_is_the_client() -> None:
    assert resolve_client_ip("10.0.0.1", trusted=_proxies()) == "10.0.0.1"


def test_chain_of_only_trusted_hops_yields_the_leftmost() -> None:
    assert (
        resolve_client_ip("10.0.0.3", x_forwarded_for="10.0.0.5, 10.0.0.1", trusted=_proxies()) == "10.0.0.5"
    )


def test_several_x_forwarded_for_headers_joined_with_commas_form_one_chain() -> None:
    xff = f"{FORGED},{CLIENT}, 10.0.0.1"
    assert resolve_client_ip("10.0.0.2", x_forwarded_for=xff, trusted=_proxies()) == CLIENT


@pytest.mark.parametrize("bad", ["garbage", "unknown", "_hidden", "", " ", "999.1.1.1", "<script>", "1.2.3"])
def test_malformed_hop_stops_the_walk_at_the_last_trusted_hop(bad: str) -> None:
    xff = f"{CLIENT}, {bad}, 10.0.0.1"
    assert resolve_client_ip("10.0.0.2", x_forwarded_for=xff, trusted=_proxies()) == "10.0.0.1"


def test_malformed_rightmost_hop_leaves_the_peer_as_client() -> None:
    assert (
        resolve_client_ip("10.0.0.2", x_forwarded_for=f"{CLIENT}, unknown", trusted=_proxies()) == "10.0.0.2"
    )


def test_trailing_comma_leaves_the_peer_as_client() -> None:
    assert resolve_client_ip("10.0.0.2", x_forwarded_for=f"{CLIENT},", trusted=_proxies()) == "10.0.0.2"


def test_walk_through_more_than_32_trusted_hops_stops_at_a_trusted_hop() -> None:
    xff = ", ".join([FORGED] + [f"10.0.{n // 250}.{n % 250 + 1}" for n in range(40)])
    result = resolve_client_ip("10.255.0.1", x_forwarded_for=xff, trusted=_proxies())
    assert result is not None
    assert ipaddress.ip_address(result) in ipaddress.ip_network("10.0.0.0/8")


def test_huge_forged_header_resolves_from_its_right_end() -> None:
    xff = "1.1.1.1," * 100_000 + f"{CLIENT}, 10.0.0.1"
    assert resolve_client_ip("10.0.0.2", x_forwarded_for=xff, trusted=_proxies()) == CLIENT


# --- addresses: IPv6, ports, brackets, IPv4-mapped ------------------------------------------------------


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("  2001:db8::1  ", "2001:db8::1"),
        ("203.0.113.7:5678", CLIENT),
        ("::ffff:203.0.113.7", CLIENT),
        ("[::ffff:203.0.113.7]:80", CLIENT),
    ],
)
def test_x_forwarded_for_hop_is_normalised(xff: str, expected: str) -> None:
    assert resolve_client_ip("10.0.0.1", x_forwarded_for=xff, trusted=_proxies()) == expected


def test_trusted_ipv6_peer_with_brackets_and_port_is_recognised() -> None:
    peer = "[2001:db8:ffff::1]:8000"
    assert resolve_client_ip(peer, x_forwarded_for=CLIENT, trusted=_proxies()) == CLIENT


def test_ipv4_mapped_peer_matches_an_ipv4_cidr() -> None:
    assert resolve_client_ip("::ffff:10.0.0.1", x_forwarded_for=CLIENT, trusted=_proxies()) == CLIENT


def test_ipv4_mapped_cidr_matches_ipv4_addresses() -> None:
    config = _proxies(["::ffff:10.0.0.0/104"])
    assert config.networks == (ipaddress.IPv4Network("10.0.0.0/8"),)
    assert config.is_trusted("10.1.2.3")


def test_peer_with_port_is_normalised() -> None:
    assert resolve_client_ip("10.0.0.1:5000", trusted=_proxies()) == "10.0.0.1"


# --- RFC 7239 Forwarded ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ('for="[2001:db8::1]:4711"', "2001:db8::1"),
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ('For="192.0.2.60:8080"', "192.0.2.60"),
        (f"for={FORGED}, for={CLIENT};proto=https, for=10.0.0.1", CLIENT),
        (f"for={CLIENT}, proto=https;for=10.0.0.1", CLIENT),
    ],
)
def test_forwarded_for_values_are_walked_right_to_left(forwarded: str, expected: str) -> None:
    assert resolve_client_ip("10.0.0.2", forwarded=forwarded, trusted=_proxies()) == expected


@pytest.mark.parametrize(
    "bad_element",
    [
        "for=unknown",
        "for=_hidden",
        'for="_SEVKISEK"',
        "proto=https",
        "for=1.2.3.4;for=5.6.7.8",
        'for="1.2.3.4',
    ],
)
def test_malformed_forwarded_element_stops_the_walk(bad_element: str) -> None:
    forwarded = f"for={CLIENT}, {bad_element}, for=10.0.0.1"
    assert resolve_client_ip("10.0.0.2", forwarded=forwarded, trusted=_proxies()) == "10.0.0.1"


def test_unbalanced_quote_in_forged_element_does_not_swallow_proxy_elements() -> None:
    forwarded = f'for="{FORGED}, for={CLIENT}'
    assert resolve_client_ip("10.0.0.1", forwarded=forwarded, trusted=_proxies()) == CLIENT


def test_forwarded_without_for_falls_back_to_x_forwarded_for() -> None:
    result = resolve_client_ip(
        "10.0.0.1", x_forwarded_for=CLIENT, forwarded="proto=https;host=example.com", trusted=_proxies()
    )
    assert result == CLIENT


def test_forwarded_without_for_and_no_x_forwarded_for_leaves_the_peer() -> None:
    assert resolve_client_ip("10.0.0.1", forwarded="proto=https", trusted=_proxies()) == "10.0.0.1"


# --- both headers present -------------------------------------------------------------------------------


def test_both_headers_agreeing_yield_their_client() -> None:
    result = resolve_client_ip(
        "10.0.0.2",
        x_forwarded_for=f"{FORGED}, {CLIENT}, 10.0.0.1",
        forwarded=f'for={CLIENT}, for="10.0.0.1:4000"',
        trusted=_proxies(),
    )
    assert result == CLIENT


def test_both_headers_agree_after_normalisation() -> None:
    result = resolve_client_ip(
        "10.0.0.1", x_forwarded_for="2001:db8::1", forwarded='for="[2001:DB8:0::1]:1"', trusted=_proxies()
    )
    assert result == "2001:db8::1"


def test_forged_forwarded_behind_an_x_forwarded_for_proxy_cannot_choose_the_ip() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning, match="name different client addresses"):
        result = resolve_client_ip(
            "10.0.0.1", x_forwarded_for=CLIENT, forwarded=f"for={FORGED}", trusted=_proxies()
        )
    assert result == "10.0.0.1"


def test_forged_x_forwarded_for_behind_a_forwarded_proxy_cannot_choose_the_ip() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning):
        result = resolve_client_ip(
            "10.0.0.1", x_forwarded_for=FORGED, forwarded=f"for={CLIENT}", trusted=_proxies()
        )
    assert result == "10.0.0.1"


def test_walk_stops_where_the_shorter_header_ends() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning):
        result = resolve_client_ip(
            "10.0.0.2", x_forwarded_for=f"{CLIENT}, 10.0.0.1", forwarded="for=10.0.0.1", trusted=_proxies()
        )
    assert result == "10.0.0.1"


def test_disagreement_warning_is_separate_from_the_ignored_header_warning() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning, match="no trusted proxies"):
        resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=None)
    with pytest.warns(ForwardedHeaderIgnoredWarning, match="name different client addresses"):
        resolve_client_ip("10.0.0.1", x_forwarded_for=CLIENT, forwarded=f"for={FORGED}", trusted=_proxies())


# --- hop-count mode -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "xff", "expected"),
    [
        (1, f"{FORGED}, {CLIENT}", CLIENT),
        (2, f"{FORGED}, {CLIENT}, 198.51.100.9", CLIENT),
        (3, f"{FORGED}, {CLIENT}, 198.51.100.9, 198.51.100.8", CLIENT),
    ],
)
def test_hop_count_picks_the_address_n_positions_left_of_the_peer(hops: int, xff: str, expected: str) -> None:
    assert resolve_client_ip("198.51.100.1", x_forwarded_for=xff, trusted=_proxies(None, hops)) == expected


def test_hop_count_larger_than_the_chain_yields_the_leftmost_address() -> None:
    xff = f"{CLIENT}, 198.51.100.9"
    assert resolve_client_ip("198.51.100.1", x_forwarded_for=xff, trusted=_proxies(None, 5)) == CLIENT


def test_hop_count_with_malformed_hop_inside_the_trusted_range_stops_the_walk() -> None:
    xff = f"{CLIENT}, unknown, 198.51.100.9"
    result = resolve_client_ip("198.51.100.1", x_forwarded_for=xff, trusted=_proxies(None, 3))
    assert result == "198.51.100.9"


def test_hop_count_with_malformed_client_slot_yields_the_last_proxy() -> None:
    result = resolve_client_ip("198.51.100.1", x_forwarded_for="_hidden", trusted=_proxies(None, 1))
    assert result == "198.51.100.1"


def test_hop_count_without_headers_yields_the_peer() -> None:
    assert resolve_client_ip("198.51.100.1", trusted=_proxies(None, 1)) == "198.51.100.1"


def test_hop_count_without_networks_does_not_check_the_peer() -> None:
    assert resolve_client_ip(FORGED, x_forwarded_for=CLIENT, trusted=_proxies(None, 1)) == CLIENT


def test_hop_count_reads_a_unix_socket_peer_by_position() -> None:
    assert resolve_client_ip(None, x_forwarded_for=f"{FORGED}, {CLIENT}", trusted=_proxies(None, 1)) == CLIENT


def test_hop_count_with_unix_socket_peer_and_no_headers_yields_none() -> None:
    assert resolve_client_ip("", trusted=_proxies(None, 1)) is None


def test_hop_limit_applies_even_to_addresses_inside_the_cidrs() -> None:
    xff = f"{FORGED}, 10.0.0.9, 10.0.0.1"
    assert (
        resolve_client_ip("10.0.0.3", x_forwarded_for=xff, trusted=_proxies(TRUSTED_CIDRS, 2)) == "10.0.0.9"
    )


def test_cidrs_with_hop_count_still_stop_at_an_untrusted_hop() -> None:
    xff = f"{FORGED}, {CLIENT}, 10.0.0.1"
    assert resolve_client_ip("10.0.0.3", x_forwarded_for=xff, trusted=_proxies(TRUSTED_CIDRS, 5)) == CLIENT


def test_cidrs_with_hop_count_ignore_headers_from_an_untrusted_peer() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning):
        result = resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=_proxies(TRUSTED_CIDRS, 1))
    assert result == CLIENT


# --- the peer itself ------------------------------------------------------------------------------------


@pytest.mark.parametrize("peer", [None, "", "unix:/run/app.sock", "not an ip"])
def test_unusable_peer_with_trusted_networks_yields_none(peer: str | None) -> None:
    assert resolve_client_ip(peer, x_forwarded_for=CLIENT, trusted=_proxies()) is None


@pytest.mark.parametrize("peer", [None, "", "testclient"])
def test_unusable_peer_without_configuration_yields_none(peer: str | None) -> None:
    assert resolve_client_ip(peer, trusted=None) is None


def test_invalid_peer_text_in_hop_count_mode_yields_none() -> None:
    assert resolve_client_ip("testclient", x_forwarded_for=CLIENT, trusted=_proxies(None, 1)) is None


# --- configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cidrs", [None, [], (), "", "   "])
def test_nothing_configured_gives_none(cidrs: list[str] | str | None) -> None:
    assert TrustedProxies.from_config(cidrs, None) is None


def test_comma_separated_string_is_parsed_like_a_list() -> None:
    assert _proxies(" 10.0.0.0/8 , 2001:db8::/32") == _proxies(["10.0.0.0/8", "2001:db8::/32"])


def test_single_address_becomes_a_host_network() -> None:
    assert _proxies(["192.168.1.5"]).networks == (ipaddress.IPv4Network("192.168.1.5/32"),)


def test_duplicate_entries_are_kept_once() -> None:
    assert len(_proxies(["10.0.0.0/8", "10.0.0.0/8"]).networks) == 1


def test_cidrs_and_hops_are_both_kept() -> None:
    config = _proxies(["10.0.0.0/8"], 2)
    assert (config.networks, config.hops) == ((ipaddress.IPv4Network("10.0.0.0/8"),), 2)


def test_configuration_is_immutable() -> None:
    config = _proxies()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hops = 3  # type: ignore[misc]


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not-an-ip", "10.0.0", "2001:db8::/129", "[::1]"])
def test_invalid_cidr_is_refused_with_the_allowed_forms(entry: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(repr(entry))) as info:
        TrustedProxies.from_config([entry], None)
    assert "e.g. '10.0.0.0/8'" in str(info.value)


@pytest.mark.parametrize("cidrs", ["10.0.0.0/8,,", "10.0.0.0/8,", ["10.0.0.0/8", ""], ["  "]])
def test_empty_entry_is_refused(cidrs: list[str] | str) -> None:
    with pytest.raises(ConfigurationError, match=r"is empty \(a stray or trailing comma\?\)"):
        TrustedProxies.from_config(cidrs, None)


@pytest.mark.parametrize("cidrs", ["*", ["*"], "10.0.0.0/8, 0.0.0.0/0", ["::/0"]])
def test_trust_everything_wildcard_is_refused(cidrs: list[str] | str) -> None:
    with pytest.raises(ConfigurationError, match="trusts every address") as info:
        TrustedProxies.from_config(cidrs, None)
    assert "trusted_hops=N" in str(info.value)


def test_cidr_with_host_bits_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("did you mean '10.0.0.0/8'")):
        TrustedProxies.from_config(["10.0.0.1/8"], None)


def test_non_string_entry_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="entry 1 is a int"):
        TrustedProxies.from_config([10], None)  # type: ignore[list-item]


def test_non_iterable_cidrs_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="must be a list of CIDRs or a comma-separated string"):
        TrustedProxies.from_config(5, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("hops", [0, -1, True, False, "2", 1.5])
def test_invalid_hop_count_is_refused(hops: object) -> None:
    with pytest.raises(ConfigurationError, match=r"trusted_hops must be an int >= 1"):
        TrustedProxies.from_config(None, hops)  # type: ignore[arg-type]


def test_hop_count_alone_is_a_configuration() -> None:
    assert _proxies(None, 1) == TrustedProxies(networks=(), hops=1)


def test_is_trusted_checks_membership_in_the_networks() -> None:
    config = _proxies()
    assert config.is_trusted("10.255.255.255")
    assert config.is_trusted("2001:db8:ffff::42")
    assert not config.is_trusted("11.0.0.1")
    assert not config.is_trusted("2001:db8:fffe::1")


def test_is_trusted_refuses_invalid_text() -> None:
    assert not _proxies().is_trusted("not an ip")


def test_is_trusted_accepts_every_address_when_only_hops_are_configured() -> None:
    assert _proxies(None, 2).is_trusted(CLIENT)


# --- request ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["a", "req-42", "A.b_c-9", "0" * 128, "5f0c3e2a-1b2c-4d5e-8f90-123456789abc"]
)
def test_valid_request_id_is_kept(value: str) -> None:
    assert accept_request_id(value) == value


@pytest.mark.parametrize("value", [None, "", "x" * 129, "a b", "a\nb", "abc\n", "ü", "a;b", "<script>"])
def test_invalid_request_id_is_replaced_by_a_new_one(value: str | None) -> None:
    new = accept_request_id(value)
    assert new != value
    assert re.fullmatch(r"[0-9a-f]{32}", new)


def test_generated_request_ids_differ() -> None:
    assert accept_request_id(None) != accept_request_id(None)


def test_generated_request_ids_are_unique_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda _: new_request_id(), range(4000)))
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_reuses_its_parents_request_ids() -> None:
    new_request_id()  # the parent has drawn from its generator
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() in a process with threads
        pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parents_next = [new_request_id() for _ in range(300)]
    assert re.fullmatch(r"[0-9a-f]{32}", child_id)
    assert child_id not in parents_next


def test_request_id_pattern_requires_a_full_match() -> None:
    assert REQUEST_ID_PATTERN.fullmatch("abc")
    assert not REQUEST_ID_PATTERN.fullmatch("abc def")


# --- properties -----------------------------------------------------------------------------------------

_TRUSTED_NETWORKS = [ipaddress.ip_network(c) for c in TRUSTED_CIDRS]


def _is_trusted(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in network for network in _TRUSTED_NETWORKS)


def _render(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int | None) -> str:
    if port is None:
        return str(address)
    return f"{address}:{port}" if address.version == 4 else f"[{address}]:{port}"


_ports = st.none() | st.integers(1, 65535)
_untrusted_clients = st.builds(_render, st.ip_addresses(), _ports).filter(
    lambda text: not _is_trusted(normalize_ip(text) or "10.0.0.1")
)
_trusted_hops = st.lists(
    st.builds(
        _render, st.ip_addresses(network="10.0.0.0/8") | st.ip_addresses(network="2001:db8:ffff::/48"), _ports
    ),
    max_size=4,
)
_attacker_strings = st.lists(st.text() | st.ip_addresses().map(str), max_size=6)


@given(
    attacker=_attacker_strings, client=_untrusted_clients, proxies=_trusted_hops, hops=st.none() | st.just(8)
)
def test_attacker_addresses_left_of_an_untrusted_hop_are_never_returned_from_x_forwarded_for(
    attacker: list[str], client: str, proxies: list[str], hops: int | None
) -> None:
    xff = ", ".join([*attacker, client, *proxies])
    trusted = _proxies(TRUSTED_CIDRS, hops)
    assert _quietly("10.0.0.1", x_forwarded_for=xff, trusted=trusted) == normalize_ip(client)


@given(attacker=_attacker_strings, client=_untrusted_clients, proxies=_trusted_hops)
def test_attacker_addresses_left_of_an_untrusted_hop_are_never_returned_from_forwarded(
    attacker: list[str], client: str, proxies: list[str]
) -> None:
    elements = [*attacker, *(f'for="{hop}"' for hop in [client, *proxies])]
    assert _quietly("10.0.0.1", forwarded=", ".join(elements), trusted=_proxies()) == normalize_ip(client)


@given(attacker=_attacker_strings, client=_untrusted_clients, proxies=_trusted_hops, forged=st.text())
def test_a_fully_forged_second_header_never_makes_an_attacker_address_the_client(
    attacker: list[str], client: str, proxies: list[str], forged: str
) -> None:
    xff = ", ".join([*attacker, client, *proxies])
    result = _quietly("10.0.0.1", x_forwarded_for=xff, forwarded=forged, trusted=_proxies())
    legitimate = {normalize_ip(hop) for hop in [client, *proxies, "10.0.0.1"]}
    assert result in legitimate


@given(attacker=_attacker_strings, client=_untrusted_clients, proxies=_trusted_hops)
def test_hop_count_never_returns_an_address_left_of_the_client_slot(
    attacker: list[str], client: str, proxies: list[str]
) -> None:
    xff = ", ".join([*attacker, client, *proxies])
    trusted = _proxies(None, len(proxies) + 1)
    assert _quietly("198.51.100.1", x_forwarded_for=xff, trusted=trusted) == normalize_ip(client)


@given(
    peer=st.none() | st.text() | st.ip_addresses().map(str),
    xff=st.none() | st.text(),
    forwarded=st.none() | st.text(),
    trusted=st.sampled_from([None, _proxies(), _proxies(None, 2), _proxies(TRUSTED_CIDRS, 1)]),
)
def test_resolve_never_raises_and_returns_a_normalised_address_or_none(
    peer: str | None, xff: str | None, forwarded: str | None, trusted: TrustedProxies | None
) -> None:
    result = _quietly(peer, x_forwarded_for=xff, forwarded=forwarded, trusted=trusted)
    assert result is None or normalize_ip(result) == result


@given(value=st.none() | st.text())
def test_accept_request_id_always_returns_a_pattern_match(value: str | None) -> None:
    assert REQUEST_ID_PATTERN.fullmatch(accept_request_id(value))


# --- unix sockets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("entries", [["unix", "10.0.0.0/8"], "10.0.0.0/8, UNIX", " unix "])
def test_the_unix_entry_is_parsed_beside_the_cidrs(entries: list[str] | str) -> None:
    proxies = _proxies(entries)
    assert proxies.unix
    assert proxies.networks == (() if entries == " unix " else (ipaddress.ip_network("10.0.0.0/8"),))


@pytest.mark.parametrize("entries", [["unix", "10.0.0.0/8"], ["unix"]])
@pytest.mark.parametrize("peer", [None, "", "localhost", "0.0.0.0", "::", "[::]"])
def test_the_unix_entry_walks_from_a_unix_socket_peer(peer: str | None, entries: list[str]) -> None:
    trusted = _proxies(entries)
    hops = f"{FORGED}, {CLIENT}, 10.0.0.7" if len(entries) > 1 else f"{FORGED}, {CLIENT}"
    assert resolve_client_ip(peer, x_forwarded_for=hops, trusted=trusted) == CLIENT
    assert resolve_client_ip(peer, trusted=trusted) is None  # a local process with no proxy: no address


@pytest.mark.parametrize("peer", ["127.0.0.1", "unix:/run/app.sock", "not an ip"])
def test_the_unix_entry_trusts_no_address_and_no_other_text(peer: str) -> None:
    result = _quietly(peer, x_forwarded_for=CLIENT, trusted=_proxies(["unix"]))
    assert result == normalize_ip(peer)
    assert result != CLIENT


@pytest.mark.parametrize("peer", ["0.0.0.0", "::", "[::]:0"])
def test_an_unspecified_peer_address_is_no_client_ip(peer: str) -> None:
    """uWSGI gives `REMOTE_ADDR=0.0.0.0` on a unix socket: no connection comes from it, so it is never
    every request's client IP, and with nothing configured no header is believed either."""
    assert _quietly(peer, x_forwarded_for=CLIENT, trusted=None) is None
    assert _quietly(peer, x_forwarded_for=CLIENT, trusted=_proxies(["127.0.0.1/32"])) is None


def test_waitress_localhost_is_a_unix_socket_peer_for_a_hop_count() -> None:
    assert (
        resolve_client_ip("localhost", x_forwarded_for=f"{FORGED}, {CLIENT}", trusted=_proxies(None, 1))
        == CLIENT
    )


def test_networks_without_the_unix_entry_warn_once_and_record_no_address() -> None:
    with pytest.warns(ForwardedHeaderIgnoredWarning, match="add 'unix' to trusted_proxies"):
        assert resolve_client_ip(None, x_forwarded_for=CLIENT, trusted=_proxies(TRUSTED_CIDRS)) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_client_ip("", x_forwarded_for=FORGED, trusted=_proxies(TRUSTED_CIDRS)) is None


def test_the_unix_entry_is_accepted_by_configure_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import graffer_secevents as secevents
    from graffer_secevents._config import get_config

    secevents.configure(trusted_proxies=["unix"])
    trusted = get_config().trusted_proxies
    assert trusted is not None and trusted.unix and trusted.networks == ()
    with pytest.raises(ConfigurationError, match="'unix'"):
        secevents.configure(trusted_proxies=["unixx"])


# --- a peer someone already rewrote ----------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [None, ["10.0.0.0/8"]])
def test_a_peer_equal_to_the_last_forwarded_hop_is_said_to_be_rewritten_once(
    trusted: list[str] | None,
) -> None:
    """Tornado's `xheaders=True` (the WSGI app runs on an executor thread, below no server frame) or
    werkzeug's ProxyFix around the middleware give the last X-Forwarded-For hop as the peer: a proxy
    appends whoever connected to it, never itself, so the library says so, once, without the values."""
    proxies = _proxies(trusted) if trusted else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_client_ip(FORGED, x_forwarded_for=f"198.51.100.1, {FORGED}", trusted=proxies) == FORGED
        resolve_client_ip(FORGED, x_forwarded_for=f" {FORGED}", trusted=proxies)
    said = [str(w.message) for w in caught if "is the last X-Forwarded-For hop" in str(w.message)]
    assert len(said) == 1
    assert FORGED not in said[0] and "198.51.100.1" not in said[0]


@pytest.mark.parametrize("trusted", [None, ["10.0.0.0/8"]])
def test_a_rewritten_peer_is_not_also_said_to_be_used_instead_of_the_header(
    trusted: list[str] | None,
) -> None:
    """Under Tornado's `xheaders=True` the "header ignored" warning ("the socket peer address is used as the
    client IP") was given beside the "rewritten" one: false, the peer being the header's address. A later
    request with a header and a real peer still gets it."""
    proxies = _proxies(trusted) if trusted else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve_client_ip(FORGED, x_forwarded_for=FORGED, trusted=proxies)
        assert [w.category for w in caught] == [SecEventsWarning]
        assert "is the last X-Forwarded-For hop" in str(caught[0].message)
        resolve_client_ip(CLIENT, x_forwarded_for=FORGED, trusted=proxies)
    assert [w.category for w in caught][1:] == [ForwardedHeaderIgnoredWarning]


def test_a_peer_that_is_not_the_last_hop_is_not_said_to_be_rewritten() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve_client_ip(CLIENT, x_forwarded_for=f"{CLIENT}, {FORGED}", trusted=None)
        resolve_client_ip("10.0.0.2", x_forwarded_for=f"{FORGED}, 10.0.0.2", trusted=_proxies())  # trusted
    assert not [w for w in caught if "is the last X-Forwarded-For hop" in str(w.message)]
