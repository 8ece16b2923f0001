"""The single place that starts subprocesses.

Every command is an argument list (never a shell string), has a timeout,
runs in its own process group so that a timeout or Ctrl-C kills the whole
group, and can tee its output to a kept log file.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .errors import CommandError, CommandTimeout

DEFAULT_TIMEOUT = 600


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    log: Path | None = None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a zombie we cannot reap
        pass


def _fmt(args: Sequence[str]) -> str:
    import shlex

    return " ".join(shlex.quote(str(a)) for a in args)


def run(
    args: Sequence[str | os.PathLike],
    *,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    log: Path | None = None,
    input: str | bytes | None = None,
    what: str | None = None,
) -> Result:
    """Run ``args`` to completion.

    With ``log``, stdout and stderr are merged into that file (builds are
    long and their output is for people); otherwise both are captured.
    ``what`` names the step in error messages.  Bytes ``input`` (a patch
    in whatever encoding its author used) is handed over as it is, and the
    output is decoded as UTF-8 with surrogate escapes, so that any byte
    read back (an author name in Latin-1) can be handed on unchanged, e.g.
    in an environment variable.
    """
    binary = isinstance(input, bytes)
    argv = [str(a) for a in args]
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    start = time.monotonic()
    logf = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        logf = open(log, "w")
        logf.write(f"$ {_fmt(argv)}\n")
        logf.flush()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=logf if logf else subprocess.PIPE,
            stderr=subprocess.STDOUT if logf else subprocess.PIPE,
            text=not binary,
            start_new_session=True,
        )
    except FileNotFoundError as e:
        if logf:
            logf.close()
        raise CommandError(f"{what or argv[0]}: command not found: {argv[0]}") from e
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        if logf:
            logf.close()
        raise CommandTimeout(
            f"{what or argv[0]}: timed out after {timeout:g} s: {_fmt(argv)}", log=log
        )
    except BaseException:
        _kill_group(proc)
        if logf:
            logf.close()
        raise
    if logf:
        logf.close()
    if binary:
        out = out.decode("utf-8", "surrogateescape") if out is not None else None
        err = err.decode("utf-8", "surrogateescape") if err is not None else None
    res = Result(argv, proc.returncode, out or "", err or "", time.monotonic() - start, log)
    if check and proc.returncode != 0:
        detail = (res.stderr or res.stdout).strip()
        if log is not None:
            detail = tail(log, 20)
        raise CommandError(
            f"{what or argv[0]} failed (exit {proc.returncode}): {_fmt(argv)}\n{detail}".rstrip(),
            log=log,
        )
    return res


def interactive(args: Sequence[str | os.PathLike], *, timeout: float) -> int:
    """Run a child on this terminal (a guest shell); kill its group on any exit."""
    argv = [str(a) for a in args]
    proc = subprocess.Popen(argv, start_new_session=False)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CommandTimeout(f"{argv[0]}: timed out after {timeout:g} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def tail(path: Path, n: int) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


class Stream:
    """A long-running child whose merged output is read line by line.

    Used as a context manager: leaving the block, by any path, kills the
    process group, so nothing is left running.
    """

    def __init__(self, args: Sequence[str | os.PathLike], *, cwd=None, env=None):
        self.argv = [str(a) for a in args]
        full_env = None
        if env is not None:
            full_env = dict(os.environ)
            full_env.update(env)
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            _kill_group(self.proc)
        else:
            # The leader exited; make sure nothing it started lingers.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.stdout:
            self.proc.stdout.close()

    def lines(self, deadline: float) -> Iterator[str | None]:
        """Yield decoded output lines until EOF.

        Yields None when ``deadline`` (a time.monotonic() value) passes
        with no EOF; the caller decides what a timeout means.
        """
        import selectors

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    if buf:
                        yield buf.decode(errors="replace")
                    yield None
                    return
                if not sel.select(timeout=min(left, 1.0)):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    if buf:
                        yield buf.decode(errors="replace")
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    yield line.decode(errors="replace").rstrip("\r")
        finally:
            sel.close()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
