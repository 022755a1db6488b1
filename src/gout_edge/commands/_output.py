"""What the commands share: one JSON document on stdout, rich output, progress bars on stderr and
comma-separated option lists. JSON follows ``gout_edge._io.to_json`` (NaN and infinities → null)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from gout_edge._io import dumps_json
from gout_edge.errors import UsageError

__all__ = ["ProgressBar", "comma_list", "emit_json", "stderr", "stdout"]


def _console(stderr: bool = False) -> Console:
    """A terminal gets rich's layout at its own width; a pipe or a file gets lines as long as their
    values (rich would otherwise fold a table at 80 columns, cutting a session ID or a path in two),
    and no colour codes."""
    stream = sys.stderr if stderr else sys.stdout
    console = Console(stderr=stderr)
    if console.is_terminal or not hasattr(stream, "isatty"):
        return console
    return Console(stderr=stderr, width=PIPE_WIDTH, no_color=True, highlight=False)


PIPE_WIDTH = 10_000  # the width a pipe gets: no value is folded
stderr = _console(stderr=True)
stdout = _console()


def emit_json(value: Any) -> None:
    sys.stdout.write(dumps_json(value) + "\n")
    sys.stdout.flush()


def comma_list(value: str | None, option: str, choices: Sequence[str] | None = None) -> tuple[str, ...] | None:
    """``"a, b,a"`` → ``("a", "b")`` (lower case, in order, no repeats); None for an empty value.
    With ``choices``, an unknown name is a usage error naming the option and the choices."""
    if not value:
        return None
    names = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if choices is not None and n not in choices]
    if not names or unknown:
        shown = ", ".join(repr(n) for n in unknown) if unknown else repr(value)
        raise UsageError(f"{option} {shown} is not valid; expected a comma list of {', '.join(choices or ())}")
    return names


class ProgressBar:
    """A rich progress bar on stderr, one row per task (``update(done, total, task=…)``). When
    stderr is no terminal (a log file, a pipe), plain lines instead: one every ``PLAIN_EVERY_S``
    seconds at most, and the last; each ends before the command prints its result. ``eta``: rich's
    own time-left column (off where the caller says the time left in ``note``)."""

    PLAIN_EVERY_S = 5.0

    def __init__(self, description: str, *, note: bool = False, transient: bool = True, eta: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        if note:
            columns.append(TextColumn("{task.fields[note]}"))
        self._progress = Progress(*columns, TimeElapsedColumn(), *([TimeRemainingColumn()] if eta else []),
                                  console=stderr, transient=transient)
        self._description = description
        self._tasks: dict[str, Any] = {}
        self._plain = not stderr.is_terminal
        self._last_line = 0.0
        self._pending = ""

    def __enter__(self) -> ProgressBar:
        if not self._plain:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._plain:
            if self._pending:  # the last state, once, before whatever the command prints next
                sys.stderr.write(self._pending + "\n")
                sys.stderr.flush()
            return
        self._progress.stop()

    def _plain_line(self, name: str, done: int, total: int | None, note: str) -> None:
        import time

        count = f"{done}/{total}" if total else f"{done}"
        line = f"{name}: {count}" + (f" · {note}" if note else "")
        now = time.monotonic()
        if now - self._last_line >= self.PLAIN_EVERY_S or (total and done >= total):
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
            self._last_line, self._pending = now, ""
        else:
            self._pending = line

    def update(self, done: int, total: int | None, task: str | None = None, note: str = "") -> None:
        name = task or self._description
        if self._plain:
            self._plain_line(name, done, total, note)
            return
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=total, note=note)
        self._progress.update(self._tasks[name], completed=done, total=total, note=note)

    def describe(self, text: str, task: str | None = None) -> None:
        """Rename a task (e.g. when a long step without a count starts)."""
        name = task or self._description
        if self._plain:
            sys.stderr.write(f"{name}: {text}\n")
            sys.stderr.flush()
            return
        if name in self._tasks:
            self._progress.update(self._tasks[name], description=text)


def percent(p: Any) -> str:
    """A ``stats.Proportion`` as the paper writes it: 83.3 (334/401) [81.2, 85.4]."""
    if not p.n:
        return "– (0/0)"
    return f"{100 * p.estimate:.1f} ({p.k}/{p.n}) [{100 * p.ci_low:.1f}, {100 * p.ci_high:.1f}]"


def short_percent(p: Any) -> str:
    return "– (0/0)" if not p.n else f"{100 * p.estimate:.1f} ({p.k}/{p.n})"
