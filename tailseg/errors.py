"""The errors a command reports as one line (no traceback), in a module that imports nothing.

The command line catches these without importing torch, NumPy or numba; each is re-exported
where it is raised (`tailseg.config.ConfigError`, `tailseg.data.DataError`, ...).
"""

from __future__ import annotations


class _OneLine:
    """Messages stay on one line: a carriage return or newline in a file name or value is shown
    escaped, so that `error: <file>: <field>: <problem>` is always a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))  # type: ignore[call-arg]


class ConfigError(_OneLine, ValueError):
    """A config file or override that does not fit the schema; the message is one line."""


class DataError(_OneLine, ValueError):
    """Bad dataset input; the message (one line) names the file and the field."""


class RunDirError(RuntimeError):
    """The run folder cannot be used (holds another run, is locked, is not writable)."""


class CheckpointError(RuntimeError):
    """No usable checkpoint (message names every file tried and why)."""


class TrainingError(RuntimeError):
    """The run cannot go on (non-finite loss, ...); the message says where and what is kept."""


class ConversionError(_OneLine, ValueError):
    """Weights of another toolkit that cannot become the config's model; the message names the
    file, the source key and, where there is one, the config key."""
