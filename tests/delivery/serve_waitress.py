"""``python serve_waitress.py PORT``: the WSGI app under waitress on 127.0.0.1 with four worker threads."""

import sys

import waitress
from apps import wsgi_app

waitress.serve(wsgi_app, host="127.0.0.1", port=int(sys.argv[1]), threads=4)
