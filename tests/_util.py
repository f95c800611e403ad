"""Helpers shared by tests (importable as ``from _util import …``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m cosim ARGS`` in a subprocess (as a user would run ``cosim``)."""
    env = dict(os.environ)
    env.pop("COSIM_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "cosim", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
