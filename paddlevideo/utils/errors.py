"""The one error type for user mistakes in a config or on a command line."""
from __future__ import annotations

import difflib
from typing import Iterable, List, Optional, Sequence


class ConfigError(ValueError):
    """A config file, override or argument that cannot be used.

    The message is one line naming the file and the key; ``file``, ``key``, ``expected`` and
    ``nearest`` carry the same facts for programs. Every CLI entry point catches this type once
    and prints the message with exit code 2.
    """

    def __init__(self, message: str, *, file: Optional[str] = None, key: Optional[str] = None,
                 expected: Optional[str] = None, nearest: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.file, self.key, self.expected, self.nearest = file, key, expected, list(nearest)

    def __str__(self) -> str:  # KeyError subclasses would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class UnknownNameError(ConfigError, KeyError):
    """A name that no registry entry has (also a ``KeyError``, as a failed lookup is)."""


class BadArgumentsError(ConfigError, TypeError):
    """Arguments a registered constructor does not accept (also a ``TypeError``)."""


def nearest_names(name: str, choices: Iterable[object], limit: int = 3) -> List[str]:
    """The registered/known names closest to ``name`` (all of them, up to 8, if none is close)."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), names, n=limit, cutoff=0.5)
    return close or names[:8]
