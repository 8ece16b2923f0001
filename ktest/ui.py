"""Progress and messages on stderr, so stdout stays for results."""
from __future__ import annotations

import contextlib
import time

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


@contextlib.contextmanager
def step(message: str):
    """Show a spinner while a step that may take seconds runs, then its time."""
    start = time.monotonic()
    with err.status(message):
        yield
    err.print(f"[green]✓[/] {message} [dim]({time.monotonic() - start:.1f} s)[/]")


def note(message: str) -> None:
    err.print(message)
