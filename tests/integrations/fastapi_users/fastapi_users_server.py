"""The fastapi-users app on a real uvicorn server on 127.0.0.1, for the login-burst test.

``python fastapi_users_server.py EVENTS_FILE``: prints ``PORT <n>`` once listening; writes events to
EVENTS_FILE; the SQLite database is EVENTS_FILE with a ``.db`` suffix. 127.0.0.1 is the trusted proxy.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import uvicorn
from fastapi_users_app import build_app

import graffer_secevents as api

api.configure(
    output=open(sys.argv[1], "ab"),  # noqa: SIM115 - the process's lifetime
    trusted_proxies=["127.0.0.1/32"],
    metrics="none",
)
app = build_app(f"sqlite+aiosqlite:///{Path(sys.argv[1]).with_suffix('.db')}")

if __name__ == "__main__":
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is announced: a client that connects before uvicorn has started waits in
    # the backlog instead of being refused (a busy machine lost that race: ConnectError, errno 111).
    sock.listen(128)
    # proxy_headers=False: uvicorn must not rewrite the peer; the library resolves forwarded addresses itself.
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False)
    server = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])
