"""Errors meant for the user: one line, naming the file and the field path."""

from __future__ import annotations


class ConfigError(Exception):
    """A config (file, field or override) that cannot be run.

    ``str(err)`` is the single line the CLI prints: ``FILE: FIELD.PATH: what is wrong``.
    """

    def __init__(self, message: str, *, path: str = "", source: str = "") -> None:
        self.message = message
        self.path = path
        self.source = source
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.source, self.path) if p]
        return ": ".join([*parts, self.message])

    def at(self, *, source: str | None = None, prefix: str | None = None) -> ConfigError:
        """The same error, placed in a file and/or under a parent field."""
        path = self.path
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        return ConfigError(self.message, path=path, source=source or self.source)


class RunDirError(Exception):
    """A run directory that is missing, partial or of another schema version."""
