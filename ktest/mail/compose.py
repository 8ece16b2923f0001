"""Writing one version's messages: ``git format-patch``, then the headers and
the cover letter ktest owns.

The messages are made by ``git format-patch`` (cover letter, shallow
threading, ``--base``, ``-v N``, ``--range-diff``) from the tree's series
branch, so a maintainer's ``git am`` gives back exactly that branch.  ktest
writes the From/To/Cc headers itself (each name encoded once, RFC 2047) and
fills in the cover letter.  Every check runs before a file is written, and
a directory holding an edited or already sent file is never written over.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import addresses, bench, check, maintainers, paths
from ..tree import Tree
from .common import MAIL_JSON, MailError, MailSet, edited, now, read_json, read_message, summary_doc, write_json
from .cover import bench_section, blurb, cover_text, fill_cover, latest_results
from .identity import SIGNOFF_HINT, check_messages, sender_ident, unsigned
from .versions import Mailed, changes_text, choose_version, commits, record, recorded


@dataclass
class MailOptions:
    version: int | None = None
    rfc: bool = False
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    out: Path | None = None
    force: bool = False
    signoff: bool = False       # add the sender's Signed-off-by, as git format-patch -s
    bench: Path | None = None
    cover_template: Path | None = None      # default: cover-letter.txt in the patches directory


def format_patch(tree: Tree, base: str, tip: str, outdir: Path, *, version: int = 1, rfc: bool = False,
                 sender: str | None = None, signoff: str | None = None,
                 previous: Mailed | None = None) -> list[Path]:
    """``git format-patch`` of base..tip with a cover letter.  Without
    ``sender``, each patch is From its author, as the files in patches/ are.
    ``signoff`` ("Name <addr>") appends that Signed-off-by where it is not
    already the last line (``git format-patch -s`` with that committer)."""
    args = ["format-patch", "--cover-letter", "--cover-from-description=none", "--thread=shallow",
            "--numbered", "--signoff" if signoff else "--no-signoff",
            f"--subject-prefix={'RFC PATCH' if rfc else 'PATCH'}", f"--base={base}",
            # A user's diff.noprefix would give patches git am cannot apply.
            "--src-prefix=a/", "--dst-prefix=b/",
            # format.to/format.cc from the user's config are dropped: the
            # recipients are decided here, written by set_headers.
            "--no-to", "--no-cc", "-o", str(outdir)]
    if version > 1:
        args += ["-v", str(version)]
    if previous is not None:
        args.append(f"--range-diff={previous.base}..{previous.tip}")
    env = None
    committer = sender or signoff
    if sender:
        # The patches' From: is --from (the author moves into the body, for git am).
        args.append(f"--from={sender}")
    if committer:
        # The cover letter's From:, every Message-Id and -s come from the committer.
        name, addr = addresses.split(committer)
        env = {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": addr}
    out = tree.git(*args, f"{base}..{tip}", env=env).stdout
    return [Path(p) for p in out.splitlines() if p.strip()]


def set_headers(path: Path, sender: str, to: list[str], cc: list[str]) -> None:
    """Write From/To/Cc ourselves, each name encoded once: git leaves the
    cover letter's From and all To/Cc raw UTF-8 and encodes only --from."""
    raw = path.read_bytes().decode("utf-8")
    head, sep, rest = raw.partition("\n\n")
    kept: list[str] = []
    drop = False
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and kept:
            if not drop:
                kept[-1] += "\n" + line
            continue
        name = line.split(":", 1)[0].lower() if ":" in line and not line.startswith("From ") else ""
        drop = name in ("to", "cc")
        if name == "from":
            kept.append(addresses.header("From", [sender]))
        elif not drop:
            kept.append(line)
    kept += [addresses.header("To", to)] + ([addresses.header("Cc", cc)] if cc else [])
    if not raw.isascii() and not any(h.lower().startswith("content-type:") for h in kept):
        kept += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit"]
    path.write_bytes(("\n".join(kept) + sep + rest).encode("utf-8"))


def series_range(tree: Tree) -> tuple[str, str]:
    r = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}^{{commit}}", check=False)
    if r.returncode != 0:
        raise MailError(f"{tree.path} has no series branch {tree.branch}", hint="Run: ktest series apply")
    tip = r.stdout.strip()
    if not commits(tree, tree.base, tip):
        raise MailError(f"{tree.branch} has no commits on top of its base {tree.base_ref} ({tree.base[:12]})")
    return tree.base, tip


def output_dir(out: Path | None, tree: Tree, version: int) -> Path:
    """Where to write: ``out``, when it is new, empty, or holds an earlier
    ``ktest mail`` whose files are unedited and unsent."""
    if out is None:
        return paths.home() / "mail" / f"{tree.path.name}-v{version}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise MailError(f"--out {out} is not a directory")
    if not out.is_dir() or not any(out.iterdir()):
        return out
    if not (out / MAIL_JSON).is_file():
        raise MailError(f"--out {out} is not empty and holds no {MAIL_JSON} from an earlier ktest mail",
                        hint="Name a new or empty directory.")
    doc = read_json(out)
    changed = edited(out, doc)
    if changed:
        raise MailError(f"{changed[0]} was edited after ktest mail wrote it; writing {out} again would lose "
                        "the edit, so nothing was written",
                        hint="Carry the edit back to where it is kept (patches/cover-letter.txt for the cover "
                             "letter, the patch itself for a patch) and run again, or name another --out.")
    done = [m for m in doc["messages"] if m.get("delivered")]
    if done:
        rest = len(doc["messages"]) - len(done)
        raise MailError(f"{out} holds v{doc.get('version')}, and {len(done)} of its {len(doc['messages'])} "
                        "messages were sent; ktest does not write over mail that went out",
                        hint=f"Send the other {rest} with: ktest mail --out {out} --send --resume" if rest
                        else "Mail the next version into a new directory.")
    return out


def _clear_previous(out: Path) -> None:
    """Remove the files an earlier ``ktest mail`` wrote into ``out``."""
    for m in read_json(out).get("messages", []):
        (out / Path(m.get("file", "")).name).unlink(missing_ok=True)
    shutil.rmtree(out / "b4", ignore_errors=True)


def _problem_list(problems: list) -> str:
    return "\n".join(f"  {p}" for p in problems)


def _gate(tree: Tree, opts: MailOptions, problems: list, what: str) -> None:
    if problems and not opts.force:
        hint = "Fix the patches, or pass --force to mail them anyway."
        if any(p.kind == "signoff" or p.type in ("MISSING_SIGN_OFF", "NO_AUTHOR_SIGN_OFF") for p in problems):
            hint = f"{SIGNOFF_HINT}\n{hint}"
        raise MailError(f"the series fails the mail gate ({len(problems)} problem(s){what}); nothing written:\n"
                        + _problem_list(problems), hint=hint)


def prepare(tree: Tree, opts: MailOptions) -> MailSet:
    """Check the series, find its recipients and write the messages.

    Every check runs before anything is written: a series that fails the
    gate or the sender's sign-off, has no recipients, or reuses a version
    leaves no files behind.
    """
    base, tip = series_range(tree)
    if opts.out is not None:
        output_dir(opts.out, tree, 0)       # an edited or sent directory is named first
    history = recorded(tree)
    version = choose_version(history, opts.version, tip, base, opts.force)
    prev_n = max((v for v in history if v < version), default=None)
    previous = history.get(prev_n) if prev_n else None
    title, body, cover_source = cover_text(tree, opts.cover_template)
    results = opts.bench or latest_results(tip)
    doc = bench.read_results(results) if results else None
    shas = [c for c, _ in commits(tree, base, tip)]
    sender = sender_ident(tree, shas[0])
    out = output_dir(opts.out, tree, version)
    signoff = sender if opts.signoff else None
    tmp = Path(tempfile.mkdtemp(prefix="ktest-mail-"))
    try:
        # The checks and get_maintainer.pl read a draft made like the files
        # in patches/, so checkpatch's patch line numbers match those.
        draft = format_patch(tree, base, tip, tmp / "draft", signoff=signoff)
        problems = check.gate(tree, draft[1:])
        # The sender's own sign-off ends every chain (the DCO); --signoff made it so.
        problems += unsigned(tree, shas, [d.name for d in draft[1:]], sender) if not opts.signoff else []
        _gate(tree, opts, problems, "")
        rcpt = maintainers.recipients(tree, draft[1:], to=opts.to, cc=opts.cc)
        if not rcpt:
            raise MailError(f"no recipients: {maintainers.SCRIPT} found nobody for "
                            f"{', '.join(p.name for p in draft[1:])}, and no --to/--cc was given")
        changes = changes_text(tree, body, version, previous, base, tip)
        text = blurb(body, bench_section(doc, tip) if doc else "", changes)
        files = format_patch(tree, base, tip, tmp / "final", version=version, rfc=opts.rfc, sender=sender,
                             signoff=signoff, previous=previous)
        for f in files:
            set_headers(f, sender, rcpt.to, rcpt.cc)
        fill_cover(files[0], title, text)
        # From/Signed-off-by once more, on what will be sent: the sender's
        # From: header and the author's in-body From: are new here.
        index = {d.name: n for n, d in enumerate(draft)} | {f.name: n for n, f in enumerate(files)}
        seen = {(index.get(p.patch), p.type) for p in problems}
        extra = [p for p in check_messages(tree, files[1:], [f.name for f in files[1:]])
                 if (index.get(p.patch), p.type) not in seen]
        _gate(tree, opts, extra, " in the messages as they will be sent")
        problems += extra

        if (out / MAIL_JSON).is_file():
            _clear_previous(out)
        out.mkdir(parents=True, exist_ok=True)
        messages = []
        for f in files:
            shutil.copyfile(f, out / f.name)
            messages.append(read_message(out / f.name))
        messages[0].commit = ""     # its "From <sha>" line names the tip, not a patch
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ms = MailSet(out, version, opts.rfc, base, tip, sender, rcpt.to, rcpt.cc, messages, title, text,
                 prev_n, Path(results) if results else None, problems, cover_source)
    write_json(out / MAIL_JSON, summary_doc(ms, tree))
    record(tree, version, tip, base, {
        "version": version, "rfc": opts.rfc, "changes": changes, "directory": str(out),
        "cover_message_id": ms.cover.message_id, "subjects": [m.subject for m in messages],
        "from": sender, "to": rcpt.to, "cc": rcpt.cc, "created": now()})
    return ms
