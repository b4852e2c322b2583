"""``python serve_uvicorn.py PORT``: the ASGI app under uvicorn on 127.0.0.1, no access log on stdout."""

import sys

import uvicorn
from apps import asgi_app

uvicorn.run(asgi_app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
