"""Shared fixtures: scenario writing helpers and paths."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def write_scenario(tmp_path):
    """Write a scenario text (dedented) to ``tmp_path/<name>`` and return its path."""

    def _write(text: str, name: str = "scenario.toml") -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text))
        return p

    return _write


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m cosim ARGS`` in a subprocess (as a user would run ``cosim``)."""
    env = dict(os.environ)
    env.pop("COSIM_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "cosim", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
