"""The one exception type of cosim.

Every problem a user can cause (a bad scenario key, a malformed connectome file, an
impossible rank layout) is raised as :class:`CosimError` carrying *where* (file and key)
and *what* (reason).  The command line turns it into exactly one line on stderr and exit
code 2; library users can catch it and read the fields.
"""

from __future__ import annotations

import copy
import os


class CosimError(Exception):
    """A user-facing error: ``<file>: <key>: <reason>``.

    Parameters
    ----------
    reason : str
        What is wrong, phrased for the user ("must be > 0, got -0.1").
    file : str or os.PathLike, optional
        The file the problem is in (shown by its base name).
    key : str, optional
        Dotted key inside that file (``engines.cortex.dt``) or a member name.
    """

    def __init__(self, reason: str, *, file: str | os.PathLike | None = None,
                 key: str | None = None):
        self.reason = str(reason)
        self.file = None if file is None else os.fspath(file)
        self.key = key
        super().__init__(self.message())

    def message(self) -> str:
        parts = []
        if self.file:
            parts.append(os.path.basename(self.file))
        if self.key:
            parts.append(self.key)
        parts.append(self.reason)
        # One line, whatever the reason text contained.
        return ": ".join(parts).replace("\n", " ")

    def at(self, *, file: str | os.PathLike | None = None, key: str | None = None) -> "CosimError":
        """Return a copy (of the same class) with the file/key filled in where they were missing."""
        new = copy.copy(self)
        new.file = self.file if self.file else (None if file is None else os.fspath(file))
        new.key = self.key if self.key else key
        new.args = (new.message(),)
        return new


class NumericalError(CosimError):
    """A NaN or Inf in an engine's state: the model or its parameters blew up.

    Raised by :func:`cosim.numerics.check_finite`; like every :class:`CosimError` it is a
    property of the user's scenario (exit code 2).  ``engine``: engine name; ``location``:
    ``{axis: label}`` of the first bad value (e.g. ``{"region": "rA1", "variable": "y3"}``);
    ``t_ms``: simulated time at which it was found.
    """

    def __init__(self, reason: str, *, file: str | os.PathLike | None = None,
                 key: str | None = None, engine: str | None = None,
                 location: dict | None = None, t_ms: float | None = None):
        super().__init__(reason, file=file, key=key)
        self.engine = engine
        self.location = dict(location or {})
        self.t_ms = t_ms
