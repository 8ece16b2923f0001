"""Read a guest's two channels.

The serial console carries the kernel's log and the guest init's markers;
it is scanned for the kernel's bug reports.  The program's stdout and
stderr and its exit status come on a virtio-serial port of their own
(ProgramOutput), so nothing a program prints can pass for a kernel report
or hide its exit status.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# printk's prefix: "[    3.382843] ", with CONFIG_PRINTK_CALLER also "[T133] ".
TS_RE = re.compile(r"^\[\s*\d+\.\d+\]\s?(\[\s*[TC]\d+\]\s?)?")

# Order matters: the first pattern that matches a line names the finding.
PATTERNS = [
    ("kasan", re.compile(r"BUG: KASAN:")),
    # Every lockdep report headline (kernel/locking/lockdep.c, 6.1).
    ("lockdep", re.compile(r"WARNING: (possible (circular|recursive) locking|inconsistent lock state"
                           r"|suspicious RCU usage|bad unlock balance|(SOFT|HARD)IRQ-safe -> (SOFT|HARD)IRQ-unsafe"
                           r"|possible irq lock inversion|held lock freed|lock held when returning"
                           r"|[Nn]ested lock was not taken|bad contention detected|possible deadlock"
                           r"|.* is leaving the kernel with locks still held|.*still has locks held)")),
    ("panic", re.compile(r"Kernel panic - not syncing")),
    ("oops", re.compile(r"(Oops: |general protection fault|BUG: unable to handle)")),
    ("bug", re.compile(r"(kernel BUG at |BUG: )")),
    ("warn", re.compile(r"WARNING: CPU: \d+ PID: ")),
]
# Each pattern is matched at the start of the line's text, after printk's
# prefix: these are the kernel's report headlines, never words in the middle.
CUT_RE = re.compile(r"-+\[ cut here \]-+")
# A report's last line: the end of a trace or panic, or KASAN/KFENCE's closing rule.
END_RE = re.compile(r"---\[ end (trace|Kernel panic)|={40,}$")
MAX_TRACE = 120


@dataclass
class Finding:
    kind: str
    line: str
    lineno: int
    trace: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)   # lines between "cut here" and the report
    timestamped: bool = True   # its headline carried printk's time: so must its trace lines

    def render(self) -> str:
        return "\n".join([*self.context, self.line, *self.trace])


@dataclass
class ProgramOutput:
    """The program's channel: its stdout and stderr, then the exit marker.

    The guest's init writes "\nKTEST-EXIT-<nonce>: N\n" after the program's
    last byte.  The newline before the marker is init's: it ends a last line
    the program left without one, or stands alone as an empty line, which is
    then not the program's.  So the last line is held back until the next
    one shows whether the marker follows.
    """

    nonce: str
    output: list[str] = field(default_factory=list)
    exit_status: int | None = None
    _held: str | None = None

    def feed(self, line: str) -> list[str]:
        """Take one line; return the program's lines now known to be complete."""
        if self.exit_status is not None:
            return []
        prefix = f"KTEST-EXIT-{self.nonce}: "
        if line.startswith(prefix) and self._held is not None:
            try:
                status = int(line[len(prefix):])
            except ValueError:
                status = None
            if status is not None:
                held, self._held = self._held, None
                self.exit_status = status
                return self._emit(held) if held else []
        out = self._emit(self._held) if self._held is not None else []
        self._held = line
        return out

    def finish(self) -> list[str]:
        """The channel ended without a marker: the held line was the program's."""
        held, self._held = self._held, None
        return self._emit(held) if held is not None and self.exit_status is None else []

    def _emit(self, line: str) -> list[str]:
        self.output.append(line)
        return [line]

    @property
    def done(self) -> bool:
        return self.exit_status is not None


@dataclass
class Console:
    """Feeds on console lines one by one and keeps what ktest needs."""

    nonce: str
    lines: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    booted: bool = False
    started: bool = False
    exit_status: int | None = None    # only ktest's own early exits: 125 (a module), 127 (not found)
    loaded: list[str] = field(default_factory=list)
    taint: dict[str, str] = field(default_factory=dict)   # module -> its taint flags
    failed_module: str | None = None
    not_found: str | None = None
    # Set when the guest kernel has no virtio console: the program's output
    # then shares this console (lines without printk's time are its).
    program: ProgramOutput | None = None
    printk_time: bool = False   # seen a timestamped line: reports must carry one
    _open: Finding | None = None
    _cut: int | None = None     # index of the last "cut here" line

    def feed(self, raw: str) -> list[str]:
        """Take one console line; return program lines it completed (no-port fallback only)."""
        self.lines.append(raw)
        m = TS_RE.match(raw)
        kernel = m is not None and m.end() > 0
        line = raw[m.end():] if kernel else raw
        self.printk_time = self.printk_time or kernel
        if not kernel and self._marker(line):
            return []
        if (kernel or not self.printk_time) and CUT_RE.match(line):
            self._cut = len(self.lines) - 1
        if self._open is not None and (kernel or not self._open.timestamped):
            if END_RE.match(line) or len(self._open.trace) >= MAX_TRACE:
                self._open.trace.append(line)
                self._open = None
                return []
            if not self._starts_finding(line, kernel):
                self._open.trace.append(line)
            return []
        if self._starts_finding(line, kernel):
            return []
        if not kernel and self.program is not None and self.started:
            return self.program.feed(raw)
        return []

    def _marker(self, line: str) -> bool:
        n = self.nonce
        if not line.startswith("KTEST-") or n not in line:
            return False
        if line == f"KTEST-BOOTED-{n}":
            self.booted = True
        elif line.startswith(f"KTEST-MODULE-LOADED-{n} "):
            words = line.split()[1:]
            if words:
                self.loaded.append(words[0])
                flags = [w.split("=", 1)[1] for w in words[1:] if w.startswith("taint=")]
                self.taint[words[0]] = flags[0] if flags else ""
        elif line.startswith(f"KTEST-MODULE-FAILED-{n} "):
            self.failed_module = line.split(" ", 1)[1]
        elif line.startswith(f"KTEST-NOTFOUND-{n} "):
            self.not_found = line.split(" ", 1)[1]
        elif line == f"KTEST-NOPORT-{n}":
            self.program = ProgramOutput(n)
        elif line == f"KTEST-START-{n}":
            self.started = True
        elif line.startswith(f"KTEST-EXIT-{n}: ") and not self.started:
            try:
                self.exit_status = int(line.split(": ", 1)[1])
            except ValueError:
                return False
        else:
            return False
        return True

    def _starts_finding(self, line: str, kernel: bool) -> bool:
        if self.printk_time and not kernel:
            return False
        for kind, pat in PATTERNS:
            if pat.match(line):
                f = Finding(kind, line, len(self.lines), timestamped=kernel)
                # WARN(cond, fmt...) prints its message between "cut here"
                # and the WARNING line: keep it with the report.
                if self._cut is not None and len(self.lines) - 1 - self._cut <= 20:
                    f.context = [TS_RE.sub("", x) for x in self.lines[self._cut + 1:-1]
                                 if TS_RE.match(x) or not kernel]
                    self._cut = None
                self.findings.append(f)
                self._open = f
                return True
        return False

    def out_of_tree(self) -> list[str]:
        """Loaded modules that taint "O": built out of tree, i.e. ours."""
        return [m for m in self.loaded if "O" in self.taint.get(m, "")]

    @property
    def done(self) -> bool:
        return self.exit_status is not None or (self.program is not None and self.program.done)

    def panicked(self) -> bool:
        return any(f.kind == "panic" for f in self.findings)
