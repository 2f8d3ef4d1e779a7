"""Named fault points, armed by tests to prove that a failure leaves nothing half-done.

Two kinds:

* ``check(name)`` raises :class:`InjectedFault` where armed (in-process tests);
* ``crash(name)`` kills the process with SIGKILL where armed: no cleanup, no flush, no
  ack, exactly what a power cut or the OOM killer does. A test build arms it through the
  environment, ``BATON_TEST_CRASH_AT=<point>:<n>`` (die the n-th time ``point`` is passed);
  :data:`CRASH_POINTS` names the points. Nothing arms it otherwise.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

CRASH_ENV = "BATON_TEST_CRASH_AT"
CRASH_POINTS = {
    "commit.before_ack": "an inbound message's transaction committed; its frame not acked",
    "ack.before_send": "the frame acked; the outbox has not sent what the command wrote",
    "send.before_mark": "the outbox sent a message; it is not yet marked sent",
}
#: Points off the command path (tests/e2e/test_crash.py plays a command script against each
#: of CRASH_POINTS; these have tests of their own).
OTHER_CRASH_POINTS = {
    "webhook.before_mark": "a webhook receiver answered 2xx; the cursor has not moved yet",
}


class InjectedFault(RuntimeError):
    pass


class Faults:
    def __init__(self) -> None:
        self._armed: dict[str, int] = {}
        self._crash: dict[str, int] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        f = cls()
        spec = (environ if environ is not None else os.environ).get(CRASH_ENV, "")
        if spec:
            point, _, n = spec.partition(":")
            if point not in CRASH_POINTS and point not in OTHER_CRASH_POINTS:
                raise ValueError(f"{CRASH_ENV}: unknown crash point {point!r}; known: "
                                 f"{', '.join([*CRASH_POINTS, *OTHER_CRASH_POINTS])}")
            f.arm_crash(point, int(n or 1))
            log.warning("TEST BUILD: this process will SIGKILL itself at crash point %s "
                        "(pass %s)", point, n or 1)
        return f

    def arm(self, name: str, times: int = 1) -> None:
        self._armed[name] = self._armed.get(name, 0) + times

    def arm_crash(self, point: str, nth: int = 1) -> None:
        self._crash[point] = max(1, nth)

    def check(self, name: str) -> None:
        left = self._armed.get(name, 0)
        if left > 0:
            self._armed[name] = left - 1
            raise InjectedFault(f"injected fault at {name}")

    def crash(self, point: str) -> None:
        left = self._crash.get(point)
        if left is None:
            return
        if left > 1:
            self._crash[point] = left - 1
            return
        del self._crash[point]
        sys.stderr.write(f"CRASH POINT {point}: SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
