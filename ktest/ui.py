"""Progress and messages on stderr, so stdout stays for results."""
from __future__ import annotations

import contextlib
import sys
import time

from rich.console import Console

# Piped output (scripts, CI logs, | tee) is read in an editor, not a
# terminal: no width limit there, so no table cell (a counter's name, a
# variant, a path) is ever cut or wrapped.  Tables size to their content.
_LOG_WIDTH = 1000
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else _LOG_WIDTH)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _LOG_WIDTH)


@contextlib.contextmanager
def step(message: str):
    """Show a spinner while a step that may take seconds runs, then its time."""
    start = time.monotonic()
    with err.status(message):
        yield
    err.print(f"[green]✓[/] {message} [dim]({time.monotonic() - start:.1f} s)[/]")


def note(message: str) -> None:
    err.print(message)


def interactive() -> bool:
    """Is there a person at a terminal on stdin?  False when stdin is closed
    (``<&-``: Python sets sys.stdin to None) or not a terminal."""
    try:
        return sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def confirm(question: str) -> bool:
    """Ask a y/N question on the terminal.  No terminal, EOF (Ctrl-D) or
    Ctrl-C is a no: the caller then does nothing."""
    if not interactive():
        return False
    try:
        answer = err.input(question, markup=False)
    except (EOFError, KeyboardInterrupt, OSError):
        err.print()
        return False
    return answer.strip().lower() in ("y", "yes")
