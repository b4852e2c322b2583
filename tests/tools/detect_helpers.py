"""Helpers shared by the detect tests and their conftest (imported as a top-level module, as pytest puts this
directory on `sys.path`)."""

from __future__ import annotations

from typing import Any

from graffer_secevents._tools.detect.engine import Replay


def replay_as_dicts(result: Replay) -> dict[str, Any]:
    """A replay as plain data, for comparing two engines' replays."""
    return {
        "signals": [s.as_dict() for s in result.signals],
        "records": result.records,
        "no_timestamp": result.no_timestamp,
        "late": result.late,
        "best": result.best,
    }
