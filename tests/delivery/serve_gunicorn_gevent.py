"""``python serve_gunicorn_gevent.py PORT``: the WSGI app under gunicorn's gevent worker (one worker), the
process monkey-patched by gevent as that worker does it."""

import sys

from gunicorn.app.wsgiapp import run

sys.argv = [
    "gunicorn",
    "--worker-class=gevent",
    "--workers=1",
    f"--bind=127.0.0.1:{sys.argv[1]}",
    "apps:wsgi_app",
]
run()
