"""Reading one TOML table of a protocol file: typed values, every problem recorded with its
path, and unknown keys reported (almost always a typo that would silently use no value)."""

import re
from collections.abc import Mapping

# Codes end up in URLs, API payloads and stored answers, so they stay plain snake_case.
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


def describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


class Table:
    """One TOML table being read; records problems instead of raising, and spots unknown keys."""

    def __init__(self, data: Mapping[str, object], path: str, problems: list[str]) -> None:
        self._data = data
        self._path = path
        self._problems = problems
        self._read: set[str] = set()

    def where(self, key: str | None = None) -> str:
        if key is None:
            return self._path or "(top level)"
        return f"{self._path}.{key}" if self._path else key

    def problem(self, key: str | None, message: str) -> None:
        self._problems.append(f"{self.where(key)}: {message}")

    def _value(self, key: str) -> object | None:
        self._read.add(key)
        if key not in self._data:
            self.problem(key, "missing")
            return None
        return self._data[key]

    def string(self, key: str) -> str | None:
        value = self._value(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(key, f"expected a string, found {describe(value)}")
            return None
        if not value.strip():
            self.problem(key, "must not be empty")
            return None
        return value

    def code(self, key: str) -> str | None:
        value = self.string(key)
        if value is not None and not CODE_PATTERN.match(value):
            self.problem(key, f"{value!r} is not a snake_case code (a-z, 0-9 and _)")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        value = self._value(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.problem(key, f"expected a boolean, found {describe(value)}")
            return None
        return value

    def integer(self, key: str, minimum: int = 1) -> int | None:
        value = self._value(key)
        if value is None:
            return None
        # bool is a subclass of int, and `true` is never a sensible count.
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected an integer, found {describe(value)}")
            return None
        if value < minimum:
            self.problem(key, f"must be at least {minimum}, found {value}")
            return None
        return value

    def number(self, key: str, minimum: float, maximum: float | None = None) -> float | None:
        value = self._value(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected a number, found {describe(value)}")
            return None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum:g}" if maximum is None else f"{minimum:g} to {maximum:g}"
            self.problem(key, f"must be {bounds}, found {value:g}")
            return None
        return float(value)

    def list_of(self, key: str) -> list[object] | None:
        value = self._value(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.problem(key, f"expected an array, found {describe(value)}")
            return None
        return list(value)

    def table(self, key: str) -> "Table | None":
        value = self._value(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(key, f"expected a table, found {describe(value)}")
            return None
        return Table(value, self.where(key), self._problems)

    def tables(self, key: str) -> "list[Table] | None":
        values = self.list_of(key)
        if values is None:
            return None
        tables: list[Table] = []
        for index, value in enumerate(values):
            path = f"{self.where(key)}[{index}]"
            if not isinstance(value, dict):
                self._problems.append(f"{path}: expected a table, found {describe(value)}")
                continue
            tables.append(Table(value, path, self._problems))
        return tables

    def has(self, key: str) -> bool:
        """Whether an optional key is present (reading it is still up to the caller)."""
        self._read.add(key)
        return key in self._data

    def finish(self) -> None:
        """Report keys nobody read: almost always a typo that would silently use no value."""
        for key in self._data:
            if key not in self._read:
                self.problem(key, "unknown key")
