"""The directory prometheus-client's multiprocess mode shares between processes.

Kept apart from core/metrics.py on purpose: prometheus-client picks its storage when it is
first imported (in memory, or files in PROMETHEUS_MULTIPROC_DIR), so the directory must be
ready, and exported, before anything imports core.metrics.
"""

from __future__ import annotations

import os
import shutil
import tempfile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess(configured: str | None) -> str:
    """In the main process, before any worker starts: make PROMETHEUS_MULTIPROC_DIR an
    empty directory (the configured one, else a fresh temporary one) and export it so
    every worker and managed process inherits it. Returns the directory."""
    path = configured or tempfile.mkdtemp(prefix="helpdesk-metrics-")
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):  # values of an earlier run are not this run's
        full = os.path.join(path, name)
        if name.endswith(".db"):
            os.remove(full)
        elif os.path.isdir(full):
            shutil.rmtree(full, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = path
    return path
