"""Errors a person can cause, and how they reach the terminal.

Every error that a user can fix is a :class:`LangbuildError` whose message is one line saying what
went wrong and what to do. The CLI prints that line and exits non-zero; the traceback appears only
when ``LANGBUILD_DEBUG=1`` is set.
"""

from __future__ import annotations

import contextlib
import os


class LangbuildError(Exception):
    """A problem the user can fix; its message is shown as one line, without a traceback."""

    exit_code = 1


class ConfigError(LangbuildError):
    """langbuild.toml or a --set value is wrong."""

    exit_code = 2


class UsageError(LangbuildError):
    """A flag or argument is missing or wrong."""

    exit_code = 2


def debug_enabled() -> bool:
    return os.environ.get("LANGBUILD_DEBUG", "") not in ("", "0", "false", "no")


def one_line(message: object) -> str:
    """Collapse a message to a single line so errors stay readable in logs and CI."""
    text = " ".join(str(message).split())
    return text if len(text) <= 400 else text[:397] + "..."


OUT_OF_MEMORY_MARKERS = ("out of memory", "can't allocate memory", "not enough memory")


def is_out_of_memory(err: BaseException) -> bool:
    """A GPU's ``torch.OutOfMemoryError``, or the CPU allocator's RuntimeError ("can't allocate memory")."""
    import torch

    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in OUT_OF_MEMORY_MARKERS)


@contextlib.contextmanager
def out_of_memory_becomes(message: str):
    """Turn an out-of-memory error inside the block into a LangbuildError with ``message``.

    Memory runs out in many places (passes, optimizer state, scoring, saving) and the fix differs in
    each, so each place names its own settings; a bare OOM traceback names none."""
    try:
        yield
    except Exception as err:
        if is_out_of_memory(err):
            raise LangbuildError(message) from None
        raise
