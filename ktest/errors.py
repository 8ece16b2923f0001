"""One exception family.  Each error carries the sentence the user needs."""


class KtestError(Exception):
    """An error ktest reports to the user and exits non-zero for.

    ``log`` names a kept log file to point the user at, when there is one.
    """

    exit_code = 1

    def __init__(self, message: str, *, log=None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.log = log
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.hint:
            parts.append(self.hint)
        if self.log:
            parts.append(f"log: {self.log}")
        return "\n".join(parts)


class CommandError(KtestError):
    """A subprocess failed or timed out."""


class CommandTimeout(CommandError):
    """A subprocess ran past its timeout and was killed."""


class TreeError(KtestError):
    """The kernel tree is missing, dirty, or not what we expected."""


class SeriesError(KtestError):
    """patches/series or a patch in it is bad, or does not apply."""


class BuildError(KtestError):
    """A kernel or module build failed."""


class BootError(KtestError):
    """A guest failed to boot, crashed, hung, or reported a kernel bug."""


class BenchError(KtestError):
    """A benchmark could not be run or its output could not be parsed."""


class ProjectError(KtestError):
    """No series project where ktest looked, or a project file is bad."""

    exit_code = 2


class ToolMissing(KtestError):
    """An external program or file a stage needs is not on this machine."""


def from_os_error(e: OSError) -> KtestError:
    """The machine's own fault (read-only or full disk, permissions) in one line."""
    import errno

    where = f" {e.filename}" if e.filename else ""
    hints = {
        errno.EROFS: "It is on a read-only file system: point KTEST_HOME at a writable directory.",
        errno.ENOSPC: "The disk is full: free some space, or point KTEST_HOME at another disk.",
        errno.EDQUOT: "The disk quota is used up: free some space, or point KTEST_HOME at another disk.",
        errno.EACCES: "Permission denied: point KTEST_HOME at a directory you can write.",
        errno.EPERM: "Permission denied: point KTEST_HOME at a directory you can write.",
    }
    return KtestError(f"cannot write{where}: {e.strerror or e}", hint=hints.get(e.errno))
