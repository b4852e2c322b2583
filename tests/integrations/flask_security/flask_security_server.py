"""The Flask-Security app on a real waitress server on 127.0.0.1 (8 threads), for the login-burst test.

``python flask_security_server.py EVENTS_FILE``: prints ``PORT <n>`` once listening; writes events to
EVENTS_FILE; the SQLite database is EVENTS_FILE with a ``.db`` suffix. 127.0.0.1 is the trusted proxy.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flask_security_app import build_app
from waitress.server import create_server

import graffer_secevents as api

api.configure(
    output=open(sys.argv[1], "ab"),  # noqa: SIM115 - the process's lifetime
    trusted_proxies=["127.0.0.1/32"],
    metrics="none",
)
# No refresh tokens: each would be a row written by every successful login, and SQLite has one writer.
app = build_app(f"sqlite:///{Path(sys.argv[1]).with_suffix('.db')}", refresh_tokens=False)
# A token API: clients keep the auth token, not the session (the load client shares one cookie jar, which
# never sends a cookie scoped to another path).
app.config["SESSION_COOKIE_PATH"] = "/session-unused"

if __name__ == "__main__":
    # waitress deletes forwarding headers unless told otherwise; the library resolves them itself.
    server = create_server(app, host="127.0.0.1", port=0, threads=8, clear_untrusted_proxy_headers=False)
    print(f"PORT {server.effective_port}", flush=True)
    server.run()
