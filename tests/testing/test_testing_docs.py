"""docs/testing.md tells the truth: each example marked ``<!-- docs-test: file NAME -->`` is written to that
file and run the way the page says (pytest for the fixture examples, ``manage.py test``-style Django for the
Django one, ``python -m unittest`` for the unittest one), the failure messages shown are the real ones, and
every other Python block compiles.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

import graffer_secevents as api
from graffer_secevents.testing import capture_events

PAGE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
_BLOCK = re.compile(
    r"^(?:<!-- docs-test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S
)

# Only what the examples need: hypothesis' and ddtrace's plugins cost seconds per run here.
INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider -p no:hypothesispytest -p no:ddtrace -p no:randomly
filterwarnings =
    error
    # Starlette >= 1.0 asks for the httpx2 package in its TestClient; httpx still works.
    ignore:Using `httpx` with `starlette.testclient` is deprecated
"""

# The Django project around the page's test module: the views its prose describes.
DJANGO_PROJECT = {
    "settings.py": """
        SECRET_KEY = "test"
        ALLOWED_HOSTS = ["testserver"]
        ROOT_URLCONF = "urls"
        USE_TZ = True
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
        INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
        MIDDLEWARE = []
        PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        # As docs/testing.md shows:
        INSTALLED_APPS += ["graffer_secevents.integrations.django"]
        MIDDLEWARE += ["graffer_secevents.integrations.django.SecurityEventsMiddleware"]
    """,
    "urls.py": """
        from django.contrib.auth import authenticate
        from django.core.exceptions import PermissionDenied
        from django.http import HttpResponse
        from django.urls import path


        def login(request):
            user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
            return HttpResponse(status=200 if user is not None else 401)


        def admin(request):
            raise PermissionDenied


        urlpatterns = [path("login/", login), path("admin/", admin)]
    """,
}


def blocks() -> list[tuple[str, str, str]]:
    """(marker, lang, body) of every fenced block of the page, in order."""
    text = PAGE.read_text(encoding="utf-8")
    return [(m.group("marker") or "", m.group("lang"), m.group("body")) for m in _BLOCK.finditer(text)]


def files(kind: str = "") -> dict[str, str]:
    """The page's example files whose marker reads ``file NAME`` (``kind`` empty) or ``file NAME (kind)``."""
    found = {}
    for marker, _lang, body in blocks():
        match = re.fullmatch(r"file (\S+)(?: \((\w+)\))?", marker)
        if match and (match.group(2) or "") == kind:
            found[match.group(1)] = body
    return found


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_every_python_block_is_run_or_compiled() -> None:
    python = [(marker, body) for marker, lang, body in blocks() if lang == "python"]
    assert len(python) >= 8
    for number, (marker, body) in enumerate(python, 1):
        assert marker.startswith(("file ", "compile-only")), (
            f"python block {number} is neither run nor marked"
        )
        compile(body, f"docs/testing.md, python block {number}", "exec")


def test_fixture_examples_pass_with_pytest(pytester: pytest.Pytester) -> None:
    pytest.importorskip("flask")
    pytest.importorskip("fastapi")
    examples = files()
    assert set(examples) >= {"test_accounts.py", "test_flask_events.py", "test_fastapi_events.py"}
    for name, body in examples.items():
        (pytester.path / name).write_text(body, encoding="utf-8")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=sum(body.count("\ndef test_") for body in examples.values()))


def test_django_example_passes_with_djangos_test_runner(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Django's runner and unittest only: the example must not need pytest in the process."""
    pytest.importorskip("django")
    (name, body), *_ = files("Django").items()
    probe = "\n\nimport sys\nassert 'pytest' not in sys.modules and '_pytest' not in sys.modules\n"
    for file_name, text in {**DJANGO_PROJECT, name: body + probe}.items():
        (pytester.path / file_name).write_text(textwrap.dedent(text), encoding="utf-8")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "settings")
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    result = pytester.run(sys.executable, "-m", "django", "test", name.removesuffix(".py"), timeout=120)
    assert result.ret == 0, result.stderr.str()
    result.stderr.fnmatch_lines([f"Ran {body.count('    def test_')} tests in *", "OK"])


def test_unittest_example_passes_with_python_m_unittest(pytester: pytest.Pytester) -> None:
    (name, body), *_ = files("unittest").items()
    (pytester.path / name).write_text(body, encoding="utf-8")
    result = pytester.run(sys.executable, "-m", "unittest", name.removesuffix(".py"), timeout=60)
    assert result.ret == 0, result.stderr.str()
    result.stderr.fnmatch_lines(["Ran 1 test in *", "OK"])


def shown_failures() -> list[str]:
    """The page's ``text`` blocks, as message lines without pytest's ``E`` prefix."""
    return [
        "\n".join(
            line.removeprefix("E").strip().removeprefix("AssertionError: ") for line in body.splitlines()
        )
        for _marker, lang, body in blocks()
        if lang == "text"
    ]


_PSEUDONYM = re.compile(r"anon_[0-9a-f]{32}")


def matches_page(real: str, page_text: str) -> bool:
    """Whether the real message is the one the page shows, but for the pseudonyms (they depend on the key)."""
    lines = "\n".join(line.strip() for line in page_text.splitlines())
    pattern = _PSEUDONYM.pattern.join(re.escape(part) for part in _PSEUDONYM.split(lines))
    return re.fullmatch(pattern, "\n".join(line.strip() for line in real.splitlines())) is not None


def test_failure_messages_shown_are_the_real_ones() -> None:
    with capture_events() as events:
        api.log_login(7, "failure", "203.0.113.7", login="ada", exists=True, reason="invalid_credentials")
        with pytest.raises(AssertionError) as mismatch:
            events.assert_emitted("authn_login_fail", usr__exists=False)
        events.clear()
        api.log_login(1, "success")
        api.log_logout(1)
        api.log_logout(2)
        with pytest.raises(AssertionError) as unknown:
            events.assert_emitted("authn_logout")
    shown = shown_failures()
    assert len(shown) == 2
    for page_text, real in zip(shown, (mismatch.value, unknown.value), strict=True):
        assert matches_page(str(real), page_text), str(real)
