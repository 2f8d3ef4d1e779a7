"""The dispatcher's counters, which the operations endpoint exposes."""

from __future__ import annotations


class Metrics:
    """Counters the operations endpoint exposes."""

    def __init__(self) -> None:
        self.commands: dict[tuple[str, str], int] = {}
        self.duplicates = 0

    def count(self, command: str, result: str) -> None:
        k = (command, result)
        self.commands[k] = self.commands.get(k, 0) + 1
