"""The small exception hierarchy. User errors carry every problem found, each already
phrased for a person (where it is, what is wrong, what to write instead)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Offending rows named by a key column's values (databases have no row numbers)."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can: by row numbers of a
    file (``rows``), or by key values (``keys``) where rows have no order."""

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    table: str | None = None
    column: str | None = None
    rows: tuple[int, ...] = ()
    row_count: int = 0
    hint: str | None = None
    keys: Keys | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
        elif self.table:
            where = f"table {self.table}" + (f", column {self.column}" if self.column else "")
        text = f"{where}: {self.message}" if where else self.message
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:10])
            total = max(self.row_count, len(self.rows))
            more = f" and {total - min(len(self.rows), 10)} more" if total > 10 else ""
            text += f" (rows {shown}{more})"
        elif self.keys is not None and self.keys.values:
            shown = ", ".join(self.keys.values[:10])
            total = max(self.row_count, len(self.keys.values))
            more = f" and {total - min(len(self.keys.values), 10)} more" if total > 10 else ""
            text += f" ({self.keys.column} {shown}{more})"
        if self.hint:
            text += f"; {self.hint}"
        return text


class LiftlabError(Exception):
    """Base class: anything liftlab raises on purpose."""


class UserError(LiftlabError):
    """Bad input (YAML, data, arguments). The CLI prints it and exits 1."""

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SpecError(UserError):
    """An experiment definition is invalid."""


class DataError(UserError):
    """A data table is missing, malformed or inconsistent."""
