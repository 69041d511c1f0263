"""Progress of a long loop: a rich bar with an ETA on a terminal, a plain line every tenth of the way in
logs and CI (where a redrawn bar would fill the log with carriage returns).

``progress(console, "scoring windows", total)`` yields a bar; ``bar.advance(n)`` after each unit of
work. A quiet console (or none) shows nothing. The bar writes to the stream the console had when the
bar was made, so code that captures ``sys.stdout`` meanwhile (lm-eval's chatter is hidden that way)
does not swallow it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

PLAIN_STEPS = 10  # plain lines per bar when not on a terminal


class Bar:
    """One bar; ``advance`` is cheap enough to call per request."""

    def __init__(self, console, label: str, total: int, unit: str):
        self.label, self.total, self.unit, self.done = label, max(int(total), 0), unit, 0
        self.started = time.perf_counter()
        self._next_line = self.total / PLAIN_STEPS
        self._rich = self._console = None
        if console is None or console.quiet or not self.total:
            return
        from rich.console import Console

        # Pinned to today's stream: sys.stdout may be redirected while the bar runs.
        self._console = Console(file=console.file, force_terminal=console.is_terminal, width=console.width,
                                no_color=console.no_color, color_system=console.color_system)
        if self._console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._rich = Progress(TextColumn(f"  {label}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                                  TextColumn("ETA"), TimeRemainingColumn(), console=self._console,
                                  redirect_stdout=False, redirect_stderr=False, transient=True)
            self._task = self._rich.add_task(label, total=self.total)
            self._rich.start()

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done)
        elif self._console is not None and (self.done >= self._next_line or self.done >= self.total):
            while self._next_line <= self.done:
                self._next_line += self.total / PLAIN_STEPS
            self._console.print(self._plain_line(), highlight=False)

    def _plain_line(self) -> str:
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        return f"  {self.label}: {min(self.done, self.total)}/{self.total} {self.unit}, {elapsed:.0f} s, ETA {eta:.0f} s"

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None


class LazyBar:
    """A bar for a loop that learns its total only when it starts: call it with (done, total) after each
    unit; the bar appears at the first call. Use as a context manager so the bar is closed."""

    def __init__(self, console, label: str, unit: str = ""):
        self.console, self.label, self.unit, self.bar = console, label, unit, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Bar(self.console, self.label, total, self.unit)
        self.bar.advance(done - self.bar.done)

    def __enter__(self) -> LazyBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def progress(console, label: str, total: int, unit: str = "") -> Iterator[Bar]:
    bar = Bar(console, label, total, unit)
    try:
        yield bar
    finally:
        bar.close()
