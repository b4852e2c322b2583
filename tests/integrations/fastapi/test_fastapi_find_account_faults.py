"""`find_account` is the application's code: when it raises (its database down) or hangs up halfway, the
login route's attempt is still one event, as without a finder, and the response is the application's."""

from __future__ import annotations

import warnings
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordRequestForm

from graffer_secevents._errors import reset_warnings
from graffer_secevents.integrations.fastapi import SecurityEventsMiddleware
from graffer_secevents.testing import Capture, hashed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def sync_boom(login: str) -> Any:
    raise ConnectionError("the user database is down")


async def async_boom(login: str) -> Any:
    raise ConnectionError("the user database is down")


def app_with(find_account: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SecurityEventsMiddleware, find_account=find_account)

    @app.post("/token")
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        if form.password != "right-pw":
            raise HTTPException(401)
        return {"access_token": "t"}

    return app


@pytest.mark.parametrize("find_account", [sync_boom, async_boom], ids=["sync", "async"])
def test_a_raising_find_account_still_records_each_attempt(
    security_events: Capture, find_account: Any
) -> None:
    reset_warnings()  # the warning is given once per process
    client = TestClient(app_with(find_account), client=("198.51.100.8", 1))
    with pytest.warns(Warning, match="find_account"):
        assert client.post("/token", data={"username": "ada", "password": "wrong-pw"}).status_code == 401
    assert client.post("/token", data={"username": "ada", "password": "right-pw"}).status_code == 200
    assert [r["evt"]["type"] for r in security_events.records] == ["authn_login_fail", "authn_login_success"]
    failed = security_events.assert_emitted("authn_login_fail", evt__reason="invalid_credentials")
    assert failed["usr"]["login"] == hashed("ada") and "exists" not in failed["usr"]
    security_events.assert_emitted("authn_login_success", usr__id="ada", network__client__ip="198.51.100.8")
    assert "wrong-pw" not in str(security_events.lines) and "right-pw" not in str(security_events.lines)
