"""What the commands that read logs share: the exit statuses, the "no security record" gate and the
documentation's URL that help and errors point at (`secevents --help`, docs/cli.md).

Its own module so that `cli.py` and `detect/commands.py` both use it without importing each other.
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

__all__ = [
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "EXIT_NO_RECORDS",
    "EXIT_OK",
    "EXIT_STATUSES",
    "EXIT_USAGE",
    "MAX_SAME_FINDING",
    "add_allow_empty",
    "docs_url",
    "no_records_gate",
]

PROG: Final = "secevents"
EXIT_OK: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_RECORDS: Final = 3
EXIT_ERROR: Final = 4
"""`detect`/`report`: the replay could not be done (a rule the engine refuses, an unreadable or broken input,
an internal error) — never 1, which means a signal fired."""
EXIT_STATUSES: Final = (
    "exit statuses: 0 success; 1 findings (invalid records, a signal at --fail-on, a rule problem); "
    "2 usage error or unreadable file; 3 no security record in the input (--allow-empty accepts it); "
    "4 detect/report could not replay (a rule refused, a broken input, an internal error)"
)
_EPILOG: Final = """exit statuses:
  0  success
  1  findings: invalid records, a signal at --fail-on, a rules --check problem
  2  a usage error or an unreadable file
  3  no security record in the input; --allow-empty accepts it
  4  detect/report could not replay (refused rule, broken input, internal error)

documentation: {url}
"""
MAX_SAME_FINDING: Final = 3
"""`rules --check` shows this many findings that differ only in their line number, then counts the rest."""
_DEFAULT_DOCS: Final = "https://github.com/graffer/graffer_secevents/tree/main/docs"


def docs_url(page: str = "") -> str:
    """The documentation's URL (the `Documentation` project URL of the installed package), with `page`."""
    base = _DEFAULT_DOCS
    try:
        from importlib.metadata import metadata

        for entry in metadata("graffer-secevents").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "documentation" and url.strip():
                base = url.strip()
    except Exception:  # noqa: BLE001, S110 - a help text never fails the command
        pass
    return f"{base.rstrip('/')}/{page}" if page else base


def no_records_gate(command: str, records: int, allow_empty: bool) -> int | None:
    """`EXIT_NO_RECORDS` (after saying why) when a command read no security record, unless `allow_empty`.

    Generic on purpose: `validate` here and `detect`/`report` (`detect/commands.py`) call it alike.
    """
    if records or allow_empty:
        return None
    sys.stderr.write(
        f"{PROG} {command}: no security record in the input: is it the right log? Pass --allow-empty to "
        f"accept that (exit status {EXIT_NO_RECORDS}; see {docs_url('cli.md')})\n"
    )
    return EXIT_NO_RECORDS


def add_allow_empty(parser: argparse.ArgumentParser) -> None:
    """The `--allow-empty` flag of the commands that read records."""
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help=f"exit 0 rather than {EXIT_NO_RECORDS} when the input holds no security record",
    )
