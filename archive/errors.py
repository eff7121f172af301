"""The one vocabulary of expected failures; the CLI turns each into one line and exit 2.

Raised by: settings and site loading (config errors), the database layer (unreachable or
outdated schema), and commands given bad input. Handled by: `crawler.cli`, which prints
`str(error)` on stderr; anything that is not a `UfarchiveError` is a bug and is logged.
"""

from __future__ import annotations

from pathlib import Path


class UfarchiveError(Exception):
    """An expected failure whose message tells a person what to fix."""


class ConfigError(UfarchiveError):
    """A configuration file is missing, unreadable or invalid."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path = Path(path)
        self.key = key
        self.problem = problem
        super().__init__(f"{path}: {key}: {problem}")


class SiteConfigError(ConfigError):
    """A file in `config/sites/` is invalid (raised by `crawler.sites`)."""


class DatabaseError(UfarchiveError):
    """The database cannot be reached or its schema is not what this version expects."""
