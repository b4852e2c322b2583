"""Where the example apps the demo serves are: inside the installed package, or in a source checkout.

The wheel carries `examples/flask_app.py` and `examples/django_app/` under
`graffer_secevents/_tools/_examples/`
(`[tool.hatch.build.targets.wheel.force-include]` in pyproject.toml), so `secevents demo` after a
`pip install` serves the same apps, and runs the same scenario, as `make demo` in a checkout.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["example_path"]

_PACKAGED = Path(__file__).resolve().parent / "_examples"
_CHECKOUT = Path(__file__).resolve().parents[3] / "examples"


def example_path(name: str) -> Path:
    """The path of example `name` (`"flask_app.py"`, `"django_app"`): packaged, else the checkout's."""
    packaged = _PACKAGED / name
    return packaged if packaged.exists() else _CHECKOUT / name
