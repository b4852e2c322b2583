"""Nothing of a task queue is imported until its integration is: `import graffer_secevents` (whose pipeline
reads the actor and job scope on every event) pulls in no queue, no Redis client and no broker library."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_package_imports_no_queue() -> None:
    code = (
        "import sys\nimport graffer_secevents, graffer_secevents._origin\n"
        "print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(done.stdout.split())
    assert "graffer_secevents" in loaded
    assert loaded.isdisjoint({"celery", "kombu", "rq", "dramatiq", "arq", "taskiq", "redis", "hmac"})
