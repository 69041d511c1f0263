"""Child processes that die with their parent.

``kill -9`` of langbuild cannot run any cleanup, so on its own it would leave corpus workers and
training processes running as orphans, still writing into the staging folder that the next
``langbuild run`` wipes and rebuilds: two writers in one folder. On Linux the kernel can deliver a
signal to a process when its parent exits (prctl PR_SET_PDEATHSIG); every process langbuild starts
asks for SIGKILL that way, first thing. Elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask for SIGKILL when the parent exits; exit now if it already has (``parent_pid`` given)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl (an unusual libc): orphans stay possible, nothing breaks
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the request was in place


def tied_to_this_process(module: str, *args: str) -> list[str]:
    """A command running ``python -m module args`` that dies when this process dies.

    A preexec_fn could make the same request, but running Python between fork and exec in a
    process with threads (torch has several) can deadlock; this runs it after exec instead.
    """
    return [sys.executable, "-m", "langbuild.core.processes", str(os.getpid()), module, *args]


def _run_module_tied_to_parent(argv: list[str]) -> None:
    import runpy

    parent_pid, module, *args = argv
    die_with_parent(int(parent_pid))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _run_module_tied_to_parent(sys.argv[1:])
