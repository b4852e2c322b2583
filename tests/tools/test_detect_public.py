"""The public face `graffer_secevents.detect`: its names, their public paths, and that the runtime never
imports the engine."""

from __future__ import annotations

import subprocess
import sys

import graffer_secevents.detect as detect


def test_all_is_sorted_and_exactly_the_public_names() -> None:
    assert detect.__all__ == sorted(detect.__all__)
    public = {n for n in vars(detect) if not n.startswith(("_", "@"))} - {"annotations", "Iterable", "Any"}
    assert set(detect.__all__) == public


def test_public_names_show_the_public_path() -> None:
    for name in (
        "DetectError",
        "GeoPoint",
        "Signal",
        "evaluate",
        "load_rules",
        "maxmind_lookup",
        "default_rules",
    ):
        assert getattr(detect, name).__module__ == "graffer_secevents.detect", name
    assert issubclass(detect.DetectError, ValueError)


def test_importing_the_package_imports_no_detection_tooling() -> None:
    code = (
        "import sys, graffer_secevents, graffer_secevents.testing; "
        "print(sorted(m for m in sys.modules if 'detect' in m or m.endswith('_tools.rules') or m == 'geoip2'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
