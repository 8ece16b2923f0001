"""Which versions of the series were mailed, and what changed since.

Each version is recorded in the tree, so the next one can be compared with it:

    refs/ktest/mail/vN        the series tip that was mailed as vN
    refs/ktest/mail/vN-base   its base
    refs/ktest/mail/vN-meta   a blob: JSON with the changelog, message ids, who it
                              went to, and once sent, when and to whom it was delivered
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..run import run
from ..tree import Tree
from .common import MailError

CHANGES_RE = re.compile(r"^Changes in v\d+:", re.M)


@dataclass
class Mailed:
    version: int
    tip: str
    base: str
    meta: dict = field(default_factory=dict)


def recorded(tree: Tree) -> dict[int, Mailed]:
    r = tree.git("for-each-ref", "--format=%(refname) %(objectname)", f"{tree.refs}/mail/")
    refs = dict(ln.split(" ", 1) for ln in r.stdout.splitlines() if " " in ln)
    out = {}
    for ref, sha in refs.items():
        m = re.fullmatch(rf"{re.escape(tree.refs)}/mail/v(\d+)", ref)
        if not m:
            continue
        meta = {}
        if f"{ref}-meta" in refs:
            meta = json.loads(tree.git("cat-file", "blob", refs[f"{ref}-meta"]).stdout or "{}")
        out[int(m.group(1))] = Mailed(int(m.group(1)), sha, refs.get(f"{ref}-base", ""), meta)
    return out


def choose_version(history: dict[int, Mailed], requested: int | None, tip: str, base: str,
                   force: bool = False) -> int:
    """The version to mail: ``requested``, or the next one.

    Mailing the very same series again under its version is allowed (make
    the files, look at them, then ``--send``) until it was sent; a changed
    series needs a higher version than any recorded, unless ``force``.
    """
    last = max(history, default=0)
    same = last and history[last].tip == tip and history[last].base == base
    version = requested if requested is not None else (last if same else last + 1)
    if version < 1:
        raise MailError(f"version {version}: versions start at 1")
    if force or version > last:
        return version
    if version < last:
        raise MailError(f"v{version} is lower than v{last}, the last version recorded in this tree "
                        f"(its mail/v{last} ref)", hint=f"Use --version {last + 1}, or --force to remake v{version}.")
    if not same:
        raise MailError(f"v{version} was already mailed with a different series "
                        f"({history[last].tip[:12]}, now {tip[:12]})",
                        hint=f"Use --version {last + 1}, or --force to replace v{version}.")
    sent, meta = history[last].meta.get("sent"), history[last].meta
    if sent and not sent.get("complete", True):
        raise MailError(f"v{version} was partly sent ({sent.get('messages')} of {len(meta.get('message_ids', []))} "
                        f"messages, from {meta.get('directory', '?')})",
                        hint=f"Send the rest with: ktest mail --out {meta.get('directory', 'DIR')} --send --resume")
    if sent:
        raise MailError(f"v{version} of this very series was already sent ({sent.get('time', '?')}, "
                        f"{sent.get('messages', '?')} messages from {meta.get('directory', '?')})",
                        hint=f"Change the series and mail v{last + 1}, or pass --force to remake v{version}.")
    return version


def record(tree: Tree, version: int, tip: str, base: str, meta: dict) -> None:
    blob = tree.git("hash-object", "-w", "--stdin",
                    input=json.dumps(meta, indent=1, ensure_ascii=False) + "\n").stdout.strip()
    for suffix, obj in (("", tip), ("-base", base), ("-meta", blob)):
        tree.git("update-ref", "-m", f"ktest mail v{version}", f"{tree.refs}/mail/v{version}{suffix}", obj)


def record_delivery(tree: Tree, version: int, doc: dict) -> None:
    """Add who vN went to, as delivered, to its meta blob: the next version's
    Cc list and ``series trailers`` read it from there."""
    mailed = recorded(tree).get(version)
    if mailed is None:
        return
    meta = dict(mailed.meta)
    meta["sent"] = doc.get("sent")
    meta["from"], meta["to"], meta["cc"] = doc.get("from"), doc.get("to"), doc.get("cc")
    meta["message_ids"] = [m.get("message_id") for m in doc.get("messages", [])]
    meta["delivered"] = [{"message_id": m.get("message_id"), "recipients": m.get("recipients"),
                          "time": (m.get("delivered") or {}).get("time")}
                         for m in doc.get("messages", []) if m.get("delivered")]
    record(tree, version, mailed.tip, mailed.base, meta)


def commits(tree: Tree, base: str, tip: str) -> list[tuple[str, str]]:
    out = tree.git("log", "--reverse", "--no-merges", "--format=%H %s", f"{base}..{tip}").stdout
    return [tuple(ln.split(" ", 1)) for ln in out.splitlines() if ln]


def _patch_id(tree: Tree, commit: str) -> str:
    diff = tree.git("show", "--format=", commit).stdout
    return run(["git", "patch-id", "--stable"], input=diff, timeout=60).stdout.split(" ")[0]


def _message(tree: Tree, commit: str) -> str:
    return tree.git("log", "-1", "--format=%B", commit).stdout.strip()


def changelog(tree: Tree, version: int, previous: Mailed, base: str, tip: str) -> str:
    """A "Changes in vN" skeleton: what differs from the previous version."""
    old, new = commits(tree, previous.base, previous.tip), commits(tree, base, tip)
    items = []
    if previous.base != base:
        items.append(f"- Rebased onto {base[:12]}.")
    old_by_subject = {s: c for c, s in old}
    for c, s in new:
        o = old_by_subject.get(s)
        if o is None:
            items.append(f"- New patch: {s}")
            continue
        what = []
        if _patch_id(tree, o) != _patch_id(tree, c):
            what.append("code")
        if _message(tree, o) != _message(tree, c):
            what.append("commit message")
        if what:
            items.append(f"- {s}: changed {' and '.join(what)}.")
    new_subjects = {s for _, s in new}
    items += [f"- Dropped: {s}" for _, s in old if s not in new_subjects]
    return "\n".join([f"Changes in v{version}:", *(items or ["- No changes to the patches."])])


def changes_text(tree: Tree, body: str, version: int, previous: Mailed | None, base: str, tip: str) -> str:
    """This version's changelog skeleton over the previous versions' ones.

    A cover letter that has its own "Changes in vN:" lines keeps the whole
    changelog itself, so ktest adds nothing.
    """
    if previous is None or CHANGES_RE.search(body):
        return ""
    text = changelog(tree, version, previous, base, tip)
    older = previous.meta.get("changes", "")
    return f"{text}\n\n{older}" if older else text
