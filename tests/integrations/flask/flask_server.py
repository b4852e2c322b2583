"""A Flask app with Flask-Login on a real waitress server on 127.0.0.1 (8 threads) for the no-bleed load test.

``python flask_server.py EVENTS_FILE``: prints ``PORT <n>`` once listening; writes events to EVENTS_FILE.
127.0.0.1 is the trusted proxy. The user is Flask-Login's ``current_user``, loaded by a request loader from
the ``X-Test-User`` header: no ``set_user`` call anywhere.
"""

from __future__ import annotations

import random
import sys
import time

from flask import Flask, abort
from flask_login import LoginManager, UserMixin, login_required
from waitress.server import create_server

import graffer_secevents as api
from graffer_secevents.integrations.flask import SecurityEvents

api.configure(
    output=open(sys.argv[1], "ab"),  # noqa: SIM115 - the process's lifetime
    trusted_proxies=["127.0.0.1/32"],
    metrics="none",
)


class Account(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


app = Flask(__name__)
app.secret_key = "load-test-only"
manager = LoginManager(app)
manager.request_loader(lambda request: Account(request.headers["X-Test-User"]))
SecurityEvents(app)


@app.get("/work/<int:n>")
@login_required
def work(n: int) -> str:
    time.sleep(random.random() / 200)
    api.emit("sensitive_read", object=f"work-{n}")
    if n % 2:
        abort(403)  # and the extension records authz_fail for the same request
    return "ok"


if __name__ == "__main__":
    # waitress deletes forwarding headers unless told otherwise; the library resolves them itself.
    server = create_server(app, host="127.0.0.1", port=0, threads=8, clear_untrusted_proxy_headers=False)
    print(f"PORT {server.effective_port}", flush=True)
    server.run()
