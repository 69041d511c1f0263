"""Named crash points, so tests can kill -9 langbuild at the exact moments that matter.

A random kill rarely lands inside a lock write or between the two renames of a folder swap, yet
those are the moments where a careless design loses data. Setting ``LANGBUILD_CRASH_AT=<name>``
(or ``<name>@N`` for the N-th time the point is reached) makes the process send itself SIGKILL
there: no cleanup handler, ``finally`` block or buffered write runs, exactly as with ``kill -9``.
Unset, a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "LANGBUILD_CRASH_AT"
_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
