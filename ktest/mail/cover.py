"""The cover letter: the user's text, a benchmark table, and "Changes in vN".

The text is the user's, kept where b4 keeps it, in the series: the
template ``patches/cover-letter.txt`` (title line, blank line, body), or
else the series branch's description (``git branch --edit-description``,
b4's ``branch-description`` strategy), in the same shape.  ktest never
edits it; it fills ``git format-patch``'s placeholders with it.
"""
from __future__ import annotations

import email.header
from pathlib import Path

from .. import bench, paths
from ..errors import BenchError
from ..tree import Tree
from .common import MailError


def parse_cover(text: str, where: str) -> tuple[str, str]:
    """Title and body of a cover letter text: title line, blank line, body.
    ``where`` names it in errors (a file, or the branch description)."""
    lines = text.splitlines()
    title = lines[0].strip() if lines else ""
    if not title:
        raise MailError(f"{where}:1: the first line must be the series title")
    if len(lines) > 1 and lines[1].strip():
        raise MailError(f"{where}:2: the title must be followed by a blank line")
    body = "\n".join(lines[2:]).strip("\n")
    if not body.strip():
        raise MailError(f"{where}: no body after the title: say why the series is needed")
    return title, body


def load_template(path: Path) -> tuple[str, str]:
    if not path.is_file():
        raise MailError(f"{path}: no cover letter template",
                        hint="Write the series title on the first line, a blank line, then why the series is needed.")
    return parse_cover(path.read_text(), str(path))


def cover_text(tree: Tree, template: Path | None) -> tuple[str, str, str]:
    """(title, body, where it came from): ``template`` when given, else
    patches/cover-letter.txt, else the series branch's description."""
    path = template or paths.patches_dir() / "cover-letter.txt"
    if template is not None or path.is_file():
        return (*load_template(path), str(path))
    key = f"branch.{tree.branch}.description"
    desc = tree.git("config", "--get", key, check=False).stdout
    if desc.strip():
        return (*parse_cover(desc, f"git config {key}"), f"git config {key}")
    raise MailError(f"no cover letter: {path} does not exist and the branch {tree.branch} has no description",
                    hint=f"Write {path}: the series title on the first line, a blank line, then why the "
                         "series is needed.")


def latest_results(tip: str) -> Path | None:
    """The newest ``ktest bench`` results taken on exactly this series tip."""
    found = sorted(paths.results().glob("*/results.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in found:
        try:
            doc = bench.read_results(path)
        except BenchError:
            continue
        if doc.get("inputs", {}).get("commit") == tip:
            return path
    return None


def bench_section(doc: dict, tip: str) -> str:
    inputs = doc.get("inputs", {})
    commit = inputs.get("commit", "")
    built = "this series" if commit == tip else (f"commit {commit[:12]}, not this series" if commit else "?")
    spec = inputs.get("spec", {})
    program = inputs.get("program", "ringtest")
    summary = bench.summarise(bench.records_of(doc), spec.get("variants"))
    sides = len({x.side for x in summary}) > 1
    fmt = (lambda x: "-" if x is None else f"{x:.3f}")
    where = ", ".join(x for x in (inputs.get("accel", "").upper(), inputs.get("cpu", "")) if x)
    place = "a QEMU guest" if inputs.get("where", "guest") == "guest" else "the host"
    lines = [f"tools/virtio/{program} in {place} ({where or 'QEMU'}),",
             f"guest kernel {inputs.get('kernel', '?')}, virtio modules built from {built},"]
    if spec:
        cycles = f" of {spec['run_cycles']} buffers" if spec.get("run_cycles") else ""
        lines.append(f"{spec.get('runs')} runs{cycles} per variant"
                     f"{', batch ' + str(spec['batch']) if spec.get('batch') else ''}"
                     f"{', --sleep' if spec.get('sleep') else ''}; wall time in seconds:")
    side_col = f"{'side':<18}" if sides else ""
    lines += ["", f"  {'variant':<20}{side_col}{'runs':>5}{'failed':>7}{'median':>9}{'min':>9}{'max':>9}  trust"]
    for x in summary:
        side = f"{x.side:<18}" if sides else ""
        lines.append(f"  {x.variant:<20}{side}{x.runs:>5}{x.failed:>7}{fmt(x.median):>9}{fmt(x.min):>9}"
                     f"{fmt(x.max):>9}  {x.trust}")
    comparisons = doc.get("comparisons") or []
    if comparisons:
        c0 = comparisons[0]
        lines += ["", f"  median wall time {c0['a']} / {c0['b']} (95% bootstrap interval):"]
        for c in comparisons:
            if c["ratio"] is not None:
                lines.append(f"  {c['variant']:<20}{c['ratio']:.3f}  ({c['ci_low']:.3f} .. {c['ci_high']:.3f})"
                             f"  {c['trust']}")
    return "\n".join(lines)


def blurb(body: str, bench_text: str, changes: str) -> str:
    return "\n\n".join(part for part in (body.strip("\n"), bench_text, changes) if part)


def _fold(name: str, value: str) -> str:
    """A header line folded at spaces to stay under 78 columns (RFC 5322 2.2.3)."""
    if not value.isascii():
        value = email.header.Header(value, "utf-8").encode(maxlinelen=76)
        return f"{name}: {value}"
    out, line = [], f"{name}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) > 78 and line.strip() != f"{name}:":
            out.append(line)
            line = ""
        line += " " + word
    return "\n".join(out + [line])


def fill_cover(path: Path, title: str, text: str) -> None:
    """Put the title and blurb in place of format-patch's placeholders."""
    raw = path.read_text()
    head, sep, rest = raw.partition("\n\n")
    lines = head.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("Subject: ") and "*** SUBJECT HERE ***" in line:
            lines[i] = _fold("Subject", line[len("Subject: "):].replace("*** SUBJECT HERE ***", title))
    if not text.isascii() and not any(ln.lower().startswith("content-type:") for ln in lines):
        lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8",
                  "Content-Transfer-Encoding: 8bit"]
    if "*** BLURB HERE ***" not in rest:
        raise MailError(f"{path.name}: git format-patch wrote no cover letter placeholder")
    path.write_text("\n".join(lines) + sep + rest.replace("*** BLURB HERE ***", text, 1))
