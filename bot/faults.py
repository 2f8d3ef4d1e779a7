"""Named fault points, armed by tests to prove that a failure leaves nothing half-done."""

from __future__ import annotations


class InjectedFault(RuntimeError):
    pass


class Faults:
    def __init__(self) -> None:
        self._armed: dict[str, int] = {}

    def arm(self, name: str, times: int = 1) -> None:
        self._armed[name] = self._armed.get(name, 0) + times

    def check(self, name: str) -> None:
        left = self._armed.get(name, 0)
        if left > 0:
            self._armed[name] = left - 1
            raise InjectedFault(f"injected fault at {name}")
