"""The single place that starts subprocesses.

Every command is an argument list (never a shell string), has a timeout,
runs in its own process group so that a timeout or Ctrl-C kills the whole
group, and can tee its output to a kept log file.

Nothing outlives ktest: SIGTERM, SIGHUP and SIGQUIT are turned into the
same exception as Ctrl-C (install_signal_handlers), so every cleanup path
that handles Ctrl-C kills its children; and every child asks the kernel
for SIGKILL when ktest itself dies (PR_SET_PDEATHSIG), which covers the one
signal no handler sees, SIGKILL.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import CommandError, CommandTimeout

DEFAULT_TIMEOUT = 600
PR_SET_PDEATHSIG = 1

# What a terminal, `timeout`, systemd or a CI runner sends to stop a job.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Interrupted(KeyboardInterrupt):
    """ktest was told to stop by a signal; ``signum`` says which.

    A KeyboardInterrupt, so every cleanup written for Ctrl-C runs for the
    other signals too.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _on_signal(signum, frame):
    # Once stopping, a second signal must not interrupt the cleanup itself.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """Stop on SIGINT/SIGTERM/SIGHUP/SIGQUIT by raising Interrupted."""
    for s in STOP_SIGNALS:
        signal.signal(s, _on_signal)


try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def _child_setup(parent: int):
    """A preexec_fn: SIGKILL this child when ktest dies, however it dies.

    The death signal follows the thread that forked; ktest starts children
    from its main thread only.  If ktest died between fork and prctl, the
    child has been re-parented already: exit at once.
    """
    def setup() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(137)
    return setup


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
            preexec_fn=_child_setup(os.getpid()),
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
        full = (res.stderr or res.stdout).strip()
        detail = _shorten(full)
        if log is not None:
            detail = full = tail(log, 20)
        fault = next((f for f in MACHINE_FAULTS if f in full), None)
        head = f"{what or argv[0]} failed (exit {proc.returncode})"
        if fault:
            # tar on a full disk prints one line per file: say it once, first.
            head += f": {fault}"
        raise CommandError(f"{head}: {_fmt(argv)}\n{detail}".rstrip(), log=log)
    return res


MACHINE_FAULTS = ("No space left on device", "Read-only file system", "Disk quota exceeded")


def _shorten(text: str, keep: int = 10) -> str:
    """At most ``keep`` lines: the first and last halves, and how many were left out."""
    lines = text.splitlines()
    if len(lines) <= keep:
        return text
    half = keep // 2
    return "\n".join([*lines[:half], f"... ({len(lines) - keep} more lines) ...", *lines[-half:]])


def interactive(args: Sequence[str | os.PathLike], *, timeout: float) -> int:
    """Run a child on this terminal (a guest shell); kill its group on any exit."""
    argv = [str(a) for a in args]
    proc = subprocess.Popen(argv, start_new_session=False, preexec_fn=_child_setup(os.getpid()))
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
    process group, so nothing is left running.  ``pass_fds`` are handed to
    the child (the write ends of extra output channels, see channels()).
    """

    def __init__(self, args: Sequence[str | os.PathLike], *, cwd=None, env=None,
                 pass_fds: Sequence[int] = ()):
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
            pass_fds=tuple(pass_fds),
            preexec_fn=_child_setup(os.getpid()),
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
        for item in self.channels(deadline):
            yield None if item is None else item[1]

    def channels(self, deadline: float | Callable[[], float], extra: dict[str, int] | None = None
                 ) -> Iterator[tuple[str, str] | None]:
        """Yield ``(channel, line)`` from the child's output ("stdout") and
        from each fd in ``extra`` (name -> read end), as lines complete.

        The child's stdout loses a trailing CR (a serial console's CRLF);
        extra channels are passed through as they are.  A last line without
        a newline is yielded at its channel's EOF.  Ends when stdout and
        every extra channel reached EOF; yields None when ``deadline``
        passes first.  A callable ``deadline`` is asked again each time,
        so the caller can shorten it while reading.
        """
        due = deadline if callable(deadline) else (lambda: deadline)
        import selectors

        assert self.proc.stdout is not None
        fds = {self.proc.stdout.fileno(): "stdout", **{fd: n for n, fd in (extra or {}).items()}}
        sel = selectors.DefaultSelector()
        for fd in fds:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        bufs = {fd: b"" for fd in fds}

        def decode(fd: int, raw: bytes) -> tuple[str, str]:
            text = raw.decode(errors="replace")
            return fds[fd], text.rstrip("\r") if fds[fd] == "stdout" else text

        try:
            while sel.get_map():
                left = due() - time.monotonic()
                if left <= 0:
                    for fd, buf in bufs.items():
                        if buf:
                            yield decode(fd, buf)
                    yield None
                    return
                for key, _ in sel.select(timeout=min(left, 1.0)):
                    fd = key.fd
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(fd)
                        if bufs[fd]:
                            yield decode(fd, bufs[fd])
                            bufs[fd] = b""
                        continue
                    bufs[fd] += chunk
                    while b"\n" in bufs[fd]:
                        line, bufs[fd] = bufs[fd].split(b"\n", 1)
                        yield decode(fd, line)
        finally:
            sel.close()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
