"""The one validation error of the scenario package: a list of (file, field path, reason) problems."""

from __future__ import annotations

from typing import NamedTuple


class Problem(NamedTuple):
    file: str  # source file, or "<memory>" for scenarios built in Python
    field: str  # dotted path into the scenario, e.g. "agents.2.size"; "" for the whole document
    reason: str

    def line(self) -> str:
        """`FILE: field.path: reason`, the format the CLI prints."""
        return f"{self.file}: {self.field or '<root>'}: {self.reason}"


class ScenarioError(Exception):
    """A scenario (or an edit of one) is invalid. `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(p.line() for p in self.problems) or "invalid scenario")

    def with_file(self, file: str) -> ScenarioError:
        """The same problems, attributed to `file`."""
        return ScenarioError([Problem(file, p.field, p.reason) for p in self.problems])

    @classmethod
    def single(cls, field: str, reason: str, file: str = "<memory>") -> ScenarioError:
        return cls([Problem(file, field, reason)])
