"""``patches/series``, read and written the way quilt does, kept byte for byte.

The file belongs to the user: comments, blank lines, disabled entries
(``# 0003-x.patch``), per-patch options and trailing comments all survive
a rewrite, and so do bytes in any encoding (they are only decoded to be
shown).  quilt's rules (``cat_series``/``patch_args`` in quilt's patchfns):

- a line starting with ``#`` is a comment; leading blanks are skipped;
- the first word is the patch file name, relative to the series directory;
- a ``#`` at the start of a word starts a trailing comment;
- the other words are options: ``-pN``, ``-pab`` (``-p1`` with a/ b/ names,
  as ``quilt new -p ab`` writes it) and ``-R`` (apply reversed).

ktest also restricts names to a safe set (:data:`SAFE_NAME`), so that no
patch name can mean anything to a shell, a perl ``open`` or an option parser
that is handed it later.  Patch files may be compressed as quilt allows
(``.gz``, ``.bz2``, ``.xz``, ``.lzma``); ``.lz`` (lzip) is refused.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SeriesError

# Letters, digits, '.', '_', '+', '-'; '/' only between directory parts; no
# part starting with '.' or '-' (no '..', no hidden files, no options).
SAFE_NAME = re.compile(rb"[A-Za-z0-9_+][A-Za-z0-9._+-]*(?:/[A-Za-z0-9_+][A-Za-z0-9._+-]*)*")
SAFE_SET = ("letters, digits, '.', '_', '+', '-', and '/' between directory names; "
            "no part may start with '.' or '-'")
COMMENT = re.compile(rb"(?:^|[ \t]+)#.*", re.S)
BLANKS = re.compile(rb"[ \t\r]+")
COMPRESSED = {".gz": gzip, ".bz2": bz2, ".xz": lzma, ".lzma": lzma}


def show(raw: bytes) -> str:
    """Bytes from the user's files, for a message: never raises."""
    return raw.decode("utf-8", errors="backslashreplace")


@dataclass
class Entry:
    name: str
    strip: int = 1
    reverse: bool = False
    line: int = 0                 # 1-based line number in the series file
    options: list[str] = field(default_factory=list)   # as written, e.g. ["-p0", "-R"]


@dataclass
class Line:
    raw: bytes                    # the whole line, ending included
    entry: Entry | None = None    # None for comments and blank lines
    head: bytes = b""             # leading blanks + name + options ...
    tail: bytes = b""             # ... and what follows: blanks, trailing comment, line ending


@dataclass
class SeriesFile:
    path: Path
    lines: list[Line]

    @property
    def entries(self) -> list[Entry]:
        return [ln.entry for ln in self.lines if ln.entry is not None]

    @property
    def newline(self) -> bytes:
        crlf = sum(ln.raw.endswith(b"\r\n") for ln in self.lines)
        return b"\r\n" if crlf * 2 > len(self.lines) else b"\n"


def _where(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}"


def _options(words: list[bytes], where: str, name: str) -> tuple[int, bool, list[str]]:
    strip, reverse, opts = 1, False, []
    for w in words:
        opt = show(w)
        if m := re.fullmatch(rb"-p(\d+)", w):
            strip = int(m.group(1))
        elif w == b"-pab":
            strip = 1
        elif w == b"-R":
            reverse = True
        else:
            raise SeriesError(f"{where}: unsupported option '{opt}' for {name} "
                              "(ktest understands -pN, -pab and -R)")
        opts.append(opt)
    return strip, reverse, opts


def parse_line(raw: bytes, lineno: int, path: Path) -> Line:
    where = _where(path, lineno)
    body = raw.rstrip(b"\r\n")
    if body.startswith(b"#"):
        return Line(raw)
    code = COMMENT.sub(b"", body, count=1)
    stripped = code.rstrip(b" \t\r")
    words = [w for w in BLANKS.split(stripped) if w]
    if not words:
        return Line(raw)
    name_b = words[0]
    if name_b.startswith(b"/") or b".." in name_b.split(b"/"):
        raise SeriesError(f"{where}: '{show(name_b)}' leaves the patches directory")
    if not SAFE_NAME.fullmatch(name_b):
        raise SeriesError(f"{where}: patch name '{show(name_b)}' is not in the safe set",
                          hint=f"Patch names may contain {SAFE_SET}. Rename the file and its series line.")
    name = name_b.decode("ascii")
    strip, reverse, opts = _options(words[1:], where, name)
    return Line(raw, Entry(name, strip, reverse, lineno, opts), head=stripped, tail=raw[len(stripped):])


def read(directory: Path, *, check_files: bool = True) -> SeriesFile:
    """Parse ``directory/series``.  Errors name the file and line.

    Raises SeriesError for a missing series file, an unsafe or duplicate
    name, an unknown option, or (with ``check_files``) a missing patch.
    """
    path = Path(directory) / "series"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SeriesError(f"{path}: no series file") from None
    except OSError as e:
        raise SeriesError(f"{path}: cannot read it: {e.strerror}") from None
    lines = [parse_line(raw, n, path) for n, raw in enumerate(data.splitlines(keepends=True), 1)]
    sf = SeriesFile(path, lines)
    seen: dict[str, int] = {}
    for e in sf.entries:
        if e.name in seen:
            raise SeriesError(f"{_where(path, e.line)}: '{e.name}' is listed twice (first on line {seen[e.name]})")
        seen[e.name] = e.line
        if check_files and not (path.parent / e.name).is_file():
            raise SeriesError(f"{_where(path, e.line)}: patch file '{e.name}' does not exist in {path.parent}")
    return sf


def read_patch(path: Path) -> bytes:
    """A patch file's bytes, decompressed as quilt's ``cat_file`` would."""
    module = COMPRESSED.get(path.suffix)
    if path.suffix == ".lz":
        raise SeriesError(f"patch {path.name}: lzip-compressed patches are not supported "
                          "(ktest reads .gz, .bz2, .xz and .lzma)")
    try:
        data = path.read_bytes()
        return module.decompress(data) if module else data
    except OSError as e:
        raise SeriesError(f"patch {path.name}: cannot read it: {e.strerror or e}") from None
    except (EOFError, lzma.LZMAError, ValueError) as e:
        raise SeriesError(f"patch {path.name}: not a valid {path.suffix} file: {e}") from None


def encode_patch(path: Path, text: bytes) -> bytes:
    """What to write to ``path`` for patch ``text``: compressed like its name says.

    gzip without a time stamp, so the same text gives the same bytes.
    """
    module = COMPRESSED.get(path.suffix)
    if module is gzip:
        return gzip.compress(text, mtime=0)
    if path.suffix == ".lzma":
        return lzma.compress(text, format=lzma.FORMAT_ALONE)
    return module.compress(text) if module else text


@dataclass
class Out:
    """One entry of a rewritten series: an old entry kept, or a new name."""
    name: str
    old: Entry | None = None
    plain: bool = False        # the file was rewritten as a -p1 forward patch: drop -pN/-R


def _entry_line(old: Line, out: Out) -> bytes:
    if not out.plain or (out.old.strip == 1 and not out.old.reverse):
        return old.raw
    indent = old.head[: len(old.head) - len(old.head.lstrip(b" \t"))]
    return indent + out.name.encode() + old.tail


def render(sf: SeriesFile, new: list[Out]) -> bytes:
    """The series file with ``new`` as its entries, everything else kept.

    Lines that are not entries stay where they are.  Kept entries keep
    their line (options and trailing comment included, unless the patch was
    rewritten as a plain -p1 patch); if they were reordered, the entry lines
    take the new order in the same places.  A dropped entry's line goes; a
    new entry goes right after the one before it in ``new``, or before the
    first entry line if it comes first.
    """
    nl = sf.newline
    by_name = {ln.entry.name: ln for ln in sf.lines if ln.entry}
    kept = [o for o in new if o.old is not None]
    kept_names = {o.name for o in kept}
    slots = [i for i, ln in enumerate(sf.lines) if ln.entry and ln.entry.name in kept_names]
    placed: dict[int, Out] = dict(zip(slots, kept))
    fresh_after: dict[str | None, list[Out]] = {}
    prev = None
    for o in new:
        if o.old is None:
            fresh_after.setdefault(prev, []).append(o)
        else:
            prev = o.name
    out: list[bytes] = []
    last = len(sf.lines) - 1
    ended_raw = False          # the file's own last line, unchanged, is the output's last

    def emit(raw: bytes, same_last: bool = False) -> None:
        nonlocal ended_raw
        if out and not out[-1].endswith(b"\n"):
            out[-1] += nl
        out.append(raw)
        ended_raw = same_last

    def fresh(key: str | None) -> None:
        for o in fresh_after.pop(key, []):
            emit(o.name.encode() + nl)

    first_entry = next((i for i, ln in enumerate(sf.lines) if ln.entry), None)
    for i, ln in enumerate(sf.lines):
        if i == first_entry:
            fresh(None)
        if ln.entry is None:
            emit(ln.raw, i == last)
        elif i in placed:
            o = placed[i]
            raw = _entry_line(by_name[o.name], o)
            emit(raw, i == last and raw == ln.raw)
            fresh(o.name)
    for key in list(fresh_after):
        fresh(key)
    if out and not out[-1].endswith(b"\n") and not ended_raw:
        out[-1] += nl
    return b"".join(out)
