"""Progress of a long loop: a rich bar with an ETA on a terminal, a plain line every tenth of the way in
logs and CI (where a redrawn bar would fill the log with carriage returns).

``progress(console, "scoring windows", total)`` yields a bar; ``bar.advance(n)`` after each unit of
work. A quiet console (or none) shows nothing. The bar writes to the stream the console had when the
bar was made, so code that captures ``sys.stdout`` meanwhile (lm-eval's chatter is hidden that way)
does not swallow it.

Bars nest (select's candidates, and inside each candidate its scoring windows): on a terminal a bar
made while another is shown becomes a second row of the same display; in plain text a nested bar
prints only at half way and at the end, so a log's length stays bounded by the outer loops. Lines a
loop prints while its bar is shown go through ``bar.print``, which writes them above a live display
instead of under it (where the next redraw would erase them); so does the console the first bar was
given.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

PLAIN_STEPS = 10  # plain lines per bar when not on a terminal
NESTED_PLAIN_STEPS = 2  # plain lines per bar shown inside another bar


@dataclass
class _Stream:
    """The bars open on one output stream: how deeply they nest, and their shared rich display."""

    depth: int = 0
    display: object | None = None  # rich.progress.Progress on a terminal, else None
    caller: object | None = None  # the console the first bar came with, while the display hooks its prints


# One entry per output stream with a bar open. Rich draws one live display per terminal, so bars made
# in different functions must find the display already drawn there; the console still comes in as an argument.
_streams: dict[int, _Stream] = {}


def pinned_console(console):
    """``console`` fixed to the stream it writes to now, or ``console`` itself when it shows nothing.

    A rich Console made without a file writes to whatever ``sys.stdout`` is at each print, so a bar
    created while lm-eval's chatter is captured (``harness.quiet_lm_eval``) would print into the capture.
    Code that hands a console to such a block pins it first."""
    if console is None or console.quiet:
        return console
    from rich.console import Console

    return Console(file=console.file, force_terminal=console.is_terminal, width=console.width,
                   no_color=console.no_color, color_system=console.color_system)


def _new_display(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    display = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[unit]}"), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                       redirect_stdout=False, redirect_stderr=False, transient=True)
    display.start()
    return display


class Bar:
    """One bar; ``advance`` is cheap enough to call per request."""

    def __init__(self, console, label: str, total: int, unit: str):
        self.label, self.total, self.unit, self.done = label, max(int(total), 0), unit, 0
        self.started = time.perf_counter()
        self._source = console
        self._console = self._stream = self._display = None
        if console is None or console.quiet or not self.total:
            return
        self._key = id(console.file)
        self._stream = _streams.setdefault(self._key, _Stream())
        self._steps = NESTED_PLAIN_STEPS if self._stream.depth else PLAIN_STEPS
        self._stream.depth += 1
        self._next_line = self.total / self._steps
        if self._stream.display is None:
            self._console = pinned_console(console)
            if self._console.is_terminal:
                self._stream.display = _new_display(self._console)
                # The caller's own prints (a step's lines) then land above the display, not under its redraw.
                console.push_render_hook(self._stream.display.live)
                self._stream.caller = console
        if self._stream.display is not None:
            self._display = self._stream.display
            self._console = self._display.console
            self._task = self._display.add_task(label, total=self.total, unit=unit)
        elif self._console is None:
            self._console = pinned_console(console)

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._display is not None:
            self._display.update(self._task, completed=self.done)
        elif self._console is not None and (self.done >= self._next_line or self.done >= self.total):
            while self._next_line <= self.done:
                self._next_line += self.total / self._steps
            self._console.print(self._plain_line(), highlight=False)

    def replan(self, total: int) -> None:
        """The loop learned it will run ``total`` units in all (more or fewer than first planned)."""
        total = max(int(total), self.done)
        if total == self.total:
            return
        self.total = total
        if self._display is not None:
            self._display.update(self._task, total=total)
        elif self._console is not None:
            self._next_line = min(self._next_line, total)
            self.advance(0)  # a plan cut short to what is done ends here: its last line is due now

    def print(self, *objects, **options) -> None:
        """A line from the loop: above the live display on a terminal, in order with the plain lines in a log."""
        if self._console is not None:
            self._console.print(*objects, **options)
        elif self._source is not None:
            self._source.print(*objects, **options)

    def _plain_line(self) -> str:
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        return f"  {self.label}: {min(self.done, self.total)}/{self.total} {self.unit}, {elapsed:.0f} s, ETA {eta:.0f} s"

    def close(self) -> None:
        if self._stream is None:
            return
        if self._display is not None:
            self._display.remove_task(self._task)
            self._display.refresh()  # the row goes now, not at the next timed redraw
        self._stream.depth -= 1
        if self._stream.depth == 0:
            if self._stream.display is not None:
                self._stream.caller.pop_render_hook()
                self._stream.display.stop()
            del _streams[self._key]
        self._stream = self._display = None


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
