"""Errors minstack shows to its user as plain messages, without a traceback."""
from __future__ import annotations

import difflib
from dataclasses import dataclass


class MinstackError(Exception):
    """Base for errors shown to users without a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in the user's configuration.

    ``line`` is None (or 0) when the problem is not on a line of the file,
    e.g. when it is about a default value.
    """

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}: {self.message}"


class ConfigError(MinstackError):
    """One or more problems in the user's configuration, all reported at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def did_you_mean(word: str, choices, cutoff: float = 0.6) -> str:
    """"; did you mean 'x'?" for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f"; did you mean '{close[0]}'?" if close else ""
