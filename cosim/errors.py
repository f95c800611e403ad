"""The one exception type of cosim.

Every problem a user can cause (a bad scenario key, a malformed connectome file, an
impossible rank layout) is raised as :class:`CosimError` carrying *where* (file and key)
and *what* (reason).  The command line turns it into exactly one line on stderr and exit
code 2; library users can catch it and read the fields.
"""

from __future__ import annotations

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
        """Return a copy with the file/key filled in where they were missing."""
        return CosimError(self.reason,
                          file=self.file if self.file else file,
                          key=self.key if self.key else key)
