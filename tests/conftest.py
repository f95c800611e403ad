"""Shared fixtures: scenario writing helpers and paths."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

@pytest.fixture
def write_scenario(tmp_path):
    """Write a scenario text (dedented) to ``tmp_path/<name>`` and return its path."""

    def _write(text: str, name: str = "scenario.toml") -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text))
        return p

    return _write
