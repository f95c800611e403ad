"""Run ``cosim ARGS`` (``python -m cosim``) in this process (fast) or in a subprocess."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace


def hpc(*args: str, cwd: Path) -> SimpleNamespace:
    """In-process: exit code, stdout and stderr of ``cosim.cli.main(args)`` run in ``cwd``."""
    from cosim.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as exc:      # argparse errors
                rc = exc.code
    finally:
        os.chdir(old)
    return SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


def hpc_process(*args: str, cwd: Path, env=None, timeout: float = 180) -> subprocess.CompletedProcess:
    """The same as a user runs it: a fresh ``python -m cosim`` process."""
    return subprocess.run([sys.executable, "-m", "cosim", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
