"""Read a guest's serial console: ktest's markers and the kernel's bug reports."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

TS_RE = re.compile(r"^\[\s*\d+\.\d+\]\s?")

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
CUT_RE = re.compile(r"-+\[ cut here \]-+")
END_RE = re.compile(r"---\[ end (trace|Kernel panic)")
MAX_TRACE = 60


@dataclass
class Finding:
    kind: str
    line: str
    lineno: int
    trace: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)   # lines between "cut here" and the report

    def render(self) -> str:
        return "\n".join([*self.context, self.line, *self.trace])


@dataclass
class Console:
    """Feeds on console lines one by one and keeps what ktest needs."""

    nonce: str
    lines: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    booted: bool = False
    started: bool = False
    exit_status: int | None = None
    loaded: list[str] = field(default_factory=list)
    taint: dict[str, str] = field(default_factory=dict)   # module -> its taint flags
    failed_module: str | None = None
    not_found: str | None = None
    output: list[str] = field(default_factory=list)   # the command's own lines
    _open: Finding | None = None
    _cut: int | None = None     # index of the last "cut here" line

    def feed(self, raw: str) -> None:
        self.lines.append(raw)
        line = TS_RE.sub("", raw)
        n = self.nonce
        if CUT_RE.search(line):
            self._cut = len(self.lines) - 1
        if self._open is not None:
            if END_RE.search(line) or len(self._open.trace) >= MAX_TRACE:
                self._open.trace.append(line)
                self._open = None
                return
            if not self._starts_finding(line):
                self._open.trace.append(line)
                return
            self._open = None
        if self._starts_finding(line):
            return
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
        elif line == f"KTEST-START-{n}":
            self.started = True
        elif line.startswith(f"KTEST-EXIT-{n}: "):
            try:
                self.exit_status = int(line.split(": ", 1)[1])
            except ValueError:
                pass
        elif self.started and self.exit_status is None:
            self.output.append(raw)

    def _starts_finding(self, line: str) -> bool:
        for kind, pat in PATTERNS:
            if pat.search(line):
                f = Finding(kind, line, len(self.lines))
                # WARN(cond, fmt...) prints its message between "cut here"
                # and the WARNING line: keep it with the report.
                if self._cut is not None and len(self.lines) - 1 - self._cut <= 20:
                    f.context = [TS_RE.sub("", x) for x in self.lines[self._cut + 1:-1]]
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
        return self.exit_status is not None

    def panicked(self) -> bool:
        return any(f.kind == "panic" for f in self.findings)
