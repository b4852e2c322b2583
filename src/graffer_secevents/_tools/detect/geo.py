"""Where an IP address is: the caller's lookup (a mapping in tests, a MaxMind database), and distances."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

__all__ = ["GeoLookup", "GeoPoint", "as_lookup", "distance_km", "geoip_attributes", "maxmind_lookup"]

EARTH_RADIUS_KM: Final = 6371.0088  # the mean radius (IUGG), as geodesy libraries use for haversine


@dataclass(frozen=True)
class GeoPoint:
    """A location, as Datadog's GeoIP parser would write it under `network.client.geoip`.

    Attributes:
        lat: latitude in degrees.
        lon: longitude in degrees.
        country: ISO 3166 alpha-2 code, e.g. `"FR"`; empty when unknown.
        city: the city name, when known.
    """

    lat: float
    lon: float
    country: str = ""
    city: str = ""


GeoLookup = Callable[[str], GeoPoint | None] | Mapping[str, GeoPoint]
"""An IP address to its location: a function, or a mapping (`{"203.0.113.7": GeoPoint(...)}`)."""


def as_lookup(geo: GeoLookup) -> Callable[[str], GeoPoint | None]:
    """The lookup as a function; a mapping answers `None` for an address it does not list."""
    if isinstance(geo, Mapping):
        # `isinstance` leaves the item types open; a mapping of points is a `Mapping[str, GeoPoint | None]`.
        table = cast("Mapping[str, GeoPoint | None]", geo)
        return table.get
    if callable(geo):
        return geo
    from .errors import DetectError

    raise DetectError(f"geo must be a mapping or a function of an IP address, got {type(geo).__name__}")


def geoip_attributes(point: GeoPoint) -> dict[str, Any]:
    """The `network.client.geoip` object Datadog's GeoIP parser writes, for the fields a point has."""
    attributes: dict[str, Any] = {"location": {"latitude": point.lat, "longitude": point.lon}}
    if point.country:
        attributes["country"] = {"iso_code": point.country}
    if point.city:
        attributes["city"] = {"name": point.city}
    return attributes


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (latitude, longitude) points in kilometres (haversine)."""
    lat1, lon1 = map(math.radians, a)
    lat2, lon2 = map(math.radians, b)
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def maxmind_lookup(path: str) -> Callable[[str], GeoPoint | None]:
    """A lookup backed by a MaxMind GeoIP2 / GeoLite2 City database (`.mmdb`), through `geoip2`.

    Args:
        path: the database file, e.g. `GeoLite2-City.mmdb`.

    Returns:
        A function from an IP address to its `GeoPoint`, or `None` when the database has no location
        for it (a private address, say) or the text is not an address.

    Raises:
        MissingDependencyError: `geoip2` is not installed (`pip install "graffer-secevents[geoip]"`).
        OSError: the file cannot be read; `maxminddb.InvalidDatabaseError` when it is not a database.

    Example:
        `evaluate(rules, records, geo=maxmind_lookup("GeoLite2-City.mmdb"))`
    """
    try:
        import geoip2.database
        import geoip2.errors
    except ImportError:
        from graffer_secevents._errors import MissingDependencyError

        raise MissingDependencyError("geoip2", "geoip") from None
    reader = geoip2.database.Reader(path)

    def lookup(ip: str) -> GeoPoint | None:
        try:
            found = reader.city(ip)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return None
        lat, lon = found.location.latitude, found.location.longitude
        if lat is None or lon is None:
            return None
        return GeoPoint(lat, lon, found.country.iso_code or "", found.city.name or "")

    return lookup
