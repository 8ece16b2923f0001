"""One patch file read the way ``git am`` reads a mail, for ``git apply``.

The bytes go to git as they are: ``git mailsplit -b`` (one mail, ``From ``
line or not; CRLF line ends stripped when every line has one, as a mail
transport adds them, kept otherwise, as a patch to a CRLF file needs),
``git mailinfo`` (headers in any charset, quoted-printable and base64
bodies, in-body ``From:``/``Subject:``), and ``git stripspace`` for the
commit message, exactly as ``git am`` builds it.  Nothing here decodes a
byte except to show it.

A plain quilt patch (a description, then the diff, no mail headers) is
read the same way: its description becomes the commit message and the
author is ktest's fixed identity, because there is none to keep.
"""
from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SeriesError
from .run import run
from .seriesfile import read_patch, show

HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
GIT_HEADER_RE = re.compile(r"^diff --git (\S+) (\S+)$")


@dataclass
class Hunk:
    file: str
    index: int          # 1-based within its file
    old_start: int
    header: str


@dataclass
class Patch:
    name: str
    path: Path
    strip: int = 1
    line: int = 0           # line in patches/series
    reverse: bool = False   # -R in patches/series
    subject: str = ""       # for display: the message's first line
    author_name: str = ""   # exact bytes, surrogate-escaped (os.environ hands them back as they were)
    author_email: str = ""
    date: str = ""
    body: str = ""          # for display: the message after its first paragraph
    message: bytes = b""    # the commit message, as git am would write it
    diff: bytes = b""       # what git apply is given
    diff_line: int = -1     # the diff's first line in the patch file (0-based), -1 if not the file's tail
    sha256: str = ""        # of the patch file's bytes as stored
    files: list[str] = field(default_factory=list)
    hunks: list[Hunk] = field(default_factory=list)

    def file_line(self, diff_lineno: int) -> str:
        """A line of the diff git names, as a line of the patch file."""
        if self.diff_line < 0:
            return f"line {diff_lineno} of its diff"
        return f"line {self.diff_line + diff_lineno}"


def _strip_path(path: str, strip: int, name: str) -> str:
    parts = path.split("/")
    if strip > len(parts) - 1:
        raise SeriesError(f"patch {name}: -p{strip} strips all of '{path}'")
    return "/".join(parts[strip:])


def scan_diff(text: str, strip: int, name: str) -> tuple[list[str], list[Hunk]]:
    """Files and hunks of a diff, with paths stripped like ``patch -pN``.

    A git diff names its files in its ``diff --git`` line (mode-only
    changes, renames, copies and binary patches have no ``+++`` line); a
    plain diff in its ``---``/``+++`` lines.
    """
    files: list[str] = []
    hunks: list[Hunk] = []
    current, count, minus = None, 0, None
    for line in text.splitlines():
        if line.startswith("diff --git "):
            m = GIT_HEADER_RE.match(line)
            current, count, minus = None, 0, None
            if m:
                current = _strip_path(m.group(2), strip, name)
                files.append(current)
        elif line.startswith("--- "):
            minus = line[4:].split("\t", 1)[0].strip()
        elif line.startswith("+++ ") and minus is not None:
            path = line[4:].split("\t", 1)[0].strip()
            if path == "/dev/null":
                path = minus          # a deletion names its file on the --- line
            new = _strip_path(path, strip, name)
            if new != current:
                current = new
                if current not in files:
                    files.append(current)
            count, minus = 0, None
        else:
            m = HUNK_RE.match(line)
            if m and current is not None:
                count += 1
                hunks.append(Hunk(current, count, int(m.group(1)), line.split(" @@")[0] + " @@"))
    return files, hunks


def _crlf_mail(raw: bytes) -> bool:
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return bool(lines) and all(ln.endswith(b"\r") for ln in lines)


def _git(args: list[str], data: bytes, name: str, what: str, cwd: str):
    # Run outside any repository, so the commits do not depend on the
    # directory ktest was started in (its mailinfo.scissors, commit encoding).
    return run(["git", *args], input=data, cwd=cwd, timeout=60, check=False, what=f"git {what} {name}")


def load_patch(directory: Path, name: str, strip: int = 1, line: int = 0, reverse: bool = False) -> Patch:
    """Read ``directory/name`` as git am would.  Errors name the patch."""
    path = Path(directory) / name
    raw = read_patch(path)
    patch = Patch(name=name, path=path, strip=strip, line=line, reverse=reverse,
                  sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    with tempfile.TemporaryDirectory(prefix="ktest-mail-") as tmp:
        split = Path(tmp, "split")
        split.mkdir()
        keep_cr = [] if _crlf_mail(raw) else ["--keep-cr"]
        r = _git(["mailsplit", "-b", *keep_cr, f"-o{split}"], raw, name, "mailsplit", tmp)
        mails = sorted(split.iterdir())
        if r.returncode != 0 or not mails:
            raise SeriesError(f"patch {name}: git mailsplit cannot read it: {r.stderr.strip() or 'empty file'}")
        if len(mails) > 1:
            raise SeriesError(f"patch {name}: holds {len(mails)} mails (a line starting with 'From ' "
                              "separates them); one series entry is one patch",
                              hint="Split it into one file per patch (git mailsplit), one series line each.")
        mail = mails[0].read_bytes()
        msg, diff = Path(tmp, "msg"), Path(tmp, "patch")
        r = _git(["mailinfo", str(msg), str(diff)], mail, name, "mailinfo", tmp)
        if r.returncode != 0:
            raise SeriesError(f"patch {name}: cannot read its header: {r.stderr.strip()}")
        info = {}
        for row in r.stdout.splitlines():
            if ": " in row:
                k, v = row.split(": ", 1)
                info[k] = v
        patch.diff = diff.read_bytes()
        subject = info.get("Subject", "").encode("utf-8", "surrogateescape")
        # git am: subject, blank line, the rest, through stripspace.
        r = _git(["stripspace"], subject + b"\n\n" + msg.read_bytes(), name, "stripspace", tmp)
        message = r.stdout.encode("utf-8", "surrogateescape") if r.returncode == 0 else b""
    if not patch.diff.strip():
        raise SeriesError(f"patch {name}: contains no diff",
                          hint="git am refuses an empty patch; so does ktest.")
    patch.author_name = info.get("Author", "")
    patch.author_email = info.get("Email", "")
    patch.date = info.get("Date", "")
    patch.message = message or name.encode() + b"\n"
    text = show(patch.message)
    first, _, rest = text.partition("\n\n")
    patch.subject = " ".join(first.split())
    patch.body = rest.strip("\n")
    as_split = raw if keep_cr else raw.replace(b"\r\n", b"\n")
    if as_split.endswith(patch.diff):
        patch.diff_line = as_split[: len(as_split) - len(patch.diff)].count(b"\n")
    patch.files, patch.hunks = scan_diff(patch.diff.decode("utf-8", "surrogateescape"), strip, name)
    return patch


# What the kernel's perl scripts may put in a shell command unquoted
# (checkpatch.pl runs `get_maintainer.pl -f $realfile` and
# `grep ... <asm/$file>` in backticks): anything else is not handed to them.
SHELL_INERT = re.compile(r"[A-Za-z0-9._+,/=@%:-]+")
# checkpatch.pl also runs `echo "$license" | scripts/spdxcheck.py -` on an
# added SPDX line: inside double quotes these four are still live.
SPDX_RE = re.compile(r"^\+.*SPDX-License-Identifier: (.*)")
DQUOTE_LIVE = re.compile(r'[$`"\\]')
PATH_LINE_RE = re.compile(r"^(?:diff --git (\S+) (\S+)|(?:---|\+\+\+) ([^\t]*)|(?:rename|copy) (?:from|to) (.*))$")
ASM_INCLUDE_RE = re.compile(r"^\+\s*#\s*include\s*<asm/(.*)\.h>")


def shell_unsafe(diff: str) -> list[str]:
    """File names in a diff (and ``<asm/...>`` includes or SPDX lines it adds) that a shell would read
    as more than a word."""
    bad: list[str] = []
    for line in diff.splitlines():
        if line.startswith(("diff --git ", "--- ", "+++ ", "rename ", "copy ")):
            if not line.startswith(("diff --git ", "--- ", "+++ ", "rename from ", "rename to ",
                                    "copy from ", "copy to ")):
                continue
            if line.startswith("diff --git ") and not GIT_HEADER_RE.match(line):
                bad.append(line[len("diff --git "):])
                continue
            m = PATH_LINE_RE.match(line)
            names = [g.rstrip() for g in (m.groups() if m else (line,)) if g]
        elif m := ASM_INCLUDE_RE.match(line):
            names = [m.group(1)]
        elif (m := SPDX_RE.match(line)) and DQUOTE_LIVE.search(m.group(1)):
            bad.append(f"SPDX-License-Identifier: {m.group(1)}")
            continue
        else:
            continue
        names = [n[2:] if n.startswith(("a/", "b/")) else n for n in names]
        bad += [n for n in dict.fromkeys(names) if not SHELL_INERT.fullmatch(n) and n not in bad]
    return bad
