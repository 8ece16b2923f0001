"""``series trailers``: the review that came back, onto the right commits.

Reads replies from an mbox or a maildir (a thread exported from a list
archive, or one's own inbox), finds which patch each reply answers, and
adds its Reviewed-by / Acked-by / Tested-by / Reported-by trailers to that
commit on the series branch, as ``b4 trailers -u`` does.  Parsing a mail
(subject prefixes, threading headers, the trailers in a reply body, whether
a trailer names the person who sent it) is b4's own ``LoreMessage``.

Which patch a reply answers, in order of trust:

1. the thread: its In-Reply-To / References chain (through other replies)
   reaches a patch mail, either one in the same mailbox or one ktest mailed
   (the Message-Ids each ``ktest mail`` version recorded in its mail.json);
   a reply to the cover letter answers every patch;
2. a patch mail is matched to a commit by ``git patch-id --stable``, else
   by its subject (a reworded commit keeps its diff, an amended diff keeps
   its subject);
3. a reply whose thread reaches no patch: by its own subject ("Re: [PATCH
   v2 3/17] virtio_ring: ...").

A trailer already in the commit, or given by two replies, is added once.
New trailers go after the existing ones but before the last Signed-off-by
(the submitter's, as b4 keeps one's own sign-off last).  Replies that
match no patch are listed, never dropped silently.
"""
from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import SeriesError
from .replies import b4_module, read_mailbox
from .run import run
from .tree import Tree

COLLECTED = ("Reviewed-by", "Acked-by", "Tested-by", "Reported-by")
TRAILER_LINE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*: \S|^\s+\S|^\[[^]]+\]$")


class TrailersError(SeriesError):
    """The mailbox cannot be read, or the series branch cannot be rewritten."""


@dataclass
class Commit:
    sha: str
    subject: str
    message: str            # the whole commit message, as git log %B gives it
    patch_id: str
    tree: str
    parent: str
    author: tuple[str, str, str]      # name, email, raw date
    committer: tuple[str, str, str]


@dataclass
class Trailer:
    name: str               # canonical spelling, e.g. Reviewed-by
    value: str              # "Name <addr>"
    sender: str             # From: of the reply that gave it
    msgid: str
    how: str                # thread | thread (cover letter) | subject | subject (cover letter)

    @property
    def line(self) -> str:
        return f"{self.name}: {self.value}"

    def key(self) -> tuple[str, str]:
        return trailer_key(self.name, self.value)


@dataclass
class Addition:
    commit: str
    subject: str
    add: list[Trailer] = field(default_factory=list)
    present: list[Trailer] = field(default_factory=list)    # already in the commit


@dataclass
class Skipped:
    msgid: str
    sender: str
    subject: str
    reason: str
    trailers: list[str] = field(default_factory=list)


@dataclass
class Plan:
    branch: str
    tip: str
    messages: int
    additions: list[Addition]           # one per commit of the series, in order
    unmatched: list[Skipped]            # replies that answer no patch of the series
    not_taken: list[Skipped]            # trailers seen but not added, and why

    @property
    def count(self) -> int:
        return sum(len(a.add) for a in self.additions)

    def to_json(self) -> dict:
        return asdict(self) | {"count": self.count}


def trailer_key(name: str, value: str) -> tuple[str, str]:
    """Two trailers are the same when the kind and the address (else the text) are."""
    addr = email.utils.parseaddr(value)[1].lower()
    return name.lower(), addr if "@" in addr else " ".join(value.split()).lower()


def _norm_subject(s: str) -> str:
    return " ".join(s.split()).lower()


# --- reading ------------------------------------------------------------------

def series_commits(tree: Tree) -> tuple[str, list[Commit]]:
    """The series branch's tip and its commits since the base, oldest first."""
    r = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}", check=False)
    if r.returncode != 0:
        raise TrailersError(f"no branch {tree.branch} in {tree.path}", hint="Run: ktest series apply")
    tip = r.stdout.strip()
    fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%ad%x00%cn%x00%ce%x00%cd%x00%s%x00%B%x1e"
    out = tree.git("log", "--reverse", "--date=raw", f"--format={fmt}", f"{tree.base}..{tip}", timeout=300).stdout
    ids = patch_ids(tree, f"{tree.base}..{tip}")
    commits = []
    for rec in out.split("\x1e"):
        rec = rec.lstrip("\n")
        if not rec:
            continue
        f = rec.split("\x00")
        if " " in f[2]:
            raise TrailersError(f"{tree.branch} has a merge commit ({f[0][:12]}); the series must be linear")
        commits.append(Commit(f[0], f[9], f[10], ids.get(f[0], ""), f[1], f[2], (f[3], f[4], f[5]),
                              (f[6], f[7], f[8])))
    return tip, commits


def patch_ids(tree: Tree, rev_range: str) -> dict[str, str]:
    """commit -> stable patch-id, for every commit of ``rev_range``."""
    log = tree.git("log", "-p", "--no-color", "--format=commit %H", rev_range, timeout=300).stdout
    r = run(["git", "patch-id", "--stable"], input=log, timeout=120, what="git patch-id")
    return {c: p for p, c in (ln.split() for ln in r.stdout.splitlines() if ln.strip())}


def _diff_patch_id(body: str) -> str:
    r = run(["git", "patch-id", "--stable"], input=body, timeout=60, check=False, what="git patch-id")
    return r.stdout.split()[0] if r.returncode == 0 and r.stdout.strip() else ""


def mailed_messages(tree: Tree) -> dict[str, dict]:
    """Message-Id -> {"subject", "commit"} of every version ``ktest mail`` recorded.

    Read from each version's mail.json (found through its refs/ktest/mail/vN-meta);
    a version whose files are gone is skipped.
    """
    r = tree.git("for-each-ref", "--format=%(refname) %(objectname)", f"{tree.refs}/mail/", check=False)
    out: dict[str, dict] = {}
    for line in r.stdout.splitlines():
        ref, _, sha = line.partition(" ")
        if not ref.endswith("-meta"):
            continue
        try:
            meta = json.loads(tree.git("cat-file", "blob", sha).stdout or "{}")
            doc = json.loads((Path(meta["directory"]) / "mail.json").read_text())
            for m in doc.get("messages", []):
                if m.get("message_id"):
                    out[m["message_id"].strip().strip("<>")] = {"subject": m.get("subject", ""),
                                                               "commit": m.get("commit") or ""}
        except (KeyError, OSError, ValueError, TypeError):
            continue
    return out


# --- matching -----------------------------------------------------------------

class _Matcher:
    """Maps Message-Ids and subjects to commit indexes (or "cover")."""

    def __init__(self, tree: Tree, commits: list[Commit], lmsgs: list):
        self.commits = commits
        self.by_patch_id = {c.patch_id: i for i, c in enumerate(commits) if c.patch_id}
        self.by_subject = {_norm_subject(c.subject): i for i, c in enumerate(commits)}
        self.cover_subjects: set[str] = set()
        self.sent: dict[str, int | str | None] = {}      # msgid -> index, "cover", None (not in the series)
        self.sent_subject: dict[str, str] = {}
        b4 = b4_module()
        for msgid, m in mailed_messages(tree).items():
            subj = b4.LoreSubject(m["subject"])
            if not m["commit"]:
                self.sent[msgid] = "cover"
                self.cover_subjects.add(_norm_subject(subj.subject))
                continue
            pid = patch_ids(tree, f"{m['commit']}^!").get(m["commit"], "") if self._exists(tree, m["commit"]) else ""
            self.sent[msgid] = self._commit_for(pid, subj.subject)
            self.sent_subject[msgid] = subj.full_subject
        for lm in lmsgs:
            if lm.reply:
                continue
            if lm.has_diff:
                self.sent[lm.msgid] = self._commit_for(_diff_patch_id(lm.body), lm.subject)
                self.sent_subject[lm.msgid] = lm.full_subject
            elif lm.counter == 0 and lm.expected > 0 and not lm.counters_inferred:
                self.sent[lm.msgid] = "cover"
                self.cover_subjects.add(_norm_subject(lm.subject))

    @staticmethod
    def _exists(tree: Tree, sha: str) -> bool:
        return tree.git("cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0

    def _commit_for(self, patch_id: str, subject: str) -> int | None:
        if patch_id and patch_id in self.by_patch_id:
            return self.by_patch_id[patch_id]
        return self.by_subject.get(_norm_subject(subject))

    def target(self, lm, by_id: dict) -> tuple[int | str | None, str, str]:
        """(commit index | "cover" | None, how, why-not) for one reply."""
        seen, todo = set(), [lm]
        while todo:
            cur = todo.pop(0)
            parents = ([cur.in_reply_to] if cur.in_reply_to else []) + list(reversed(cur.references))
            for p in parents:
                if p in seen:
                    continue
                seen.add(p)
                if p in self.sent:
                    hit = self.sent[p]
                    if hit is None:
                        return None, "", (f"answers '{self.sent_subject.get(p, p)}', which is not in the series "
                                          "(neither its patch-id nor its subject matches a commit)")
                    return hit, "thread (cover letter)" if hit == "cover" else "thread", ""
                if p in by_id:
                    todo.append(by_id[p])
        subj = _norm_subject(lm.subject)
        if subj in self.by_subject:
            return self.by_subject[subj], "subject", ""
        if subj in self.cover_subjects:
            return "cover", "subject (cover letter)", ""
        return None, "", "its thread reaches no patch of the series and its subject names none"


def plan(tree: Tree, sources: list[Path], *, sloppy: bool = False) -> Plan:
    """What ``series trailers`` would add, read from ``sources`` (mbox files or maildirs)."""
    lmsgs = []
    for src in sources:
        lmsgs += read_mailbox(src)
    # The same message exported twice (two archives, an inbox and a list copy) counts once.
    by_id = {}
    for lm in lmsgs:
        by_id.setdefault(lm.msgid, lm)
    tip, commits = series_commits(tree)
    if not commits:
        raise TrailersError(f"{tree.branch} has no commits on top of {tree.base_ref}")
    matcher = _Matcher(tree, commits, list(by_id.values()))
    additions = [Addition(c.sha, c.subject) for c in commits]
    have = [{trailer_key(*ln.split(": ", 1)) for ln in _trailer_block(c.message)[1] if ": " in ln}
            for c in commits]
    added: list[set] = [set() for _ in commits]
    unmatched: list[Skipped] = []
    not_taken: list[Skipped] = []
    for lm in sorted(by_id.values(), key=lambda m: m.date):
        if not lm.reply:
            continue
        sender = email.utils.formataddr((lm.fromname, lm.fromemail))
        good, mismatched = lm.get_trailers(sloppy=sloppy)
        wanted = {n.lower(): n for n in COLLECTED}
        taken = [t for t in good if t.lname in wanted]
        for t in good:
            if t.lname not in wanted:
                not_taken.append(Skipped(lm.msgid, sender, lm.full_subject,
                                         f"{t.name} is not collected (only {', '.join(COLLECTED)})", [t.as_string()]))
        for t in mismatched:
            if t.lname in wanted:
                not_taken.append(Skipped(lm.msgid, sender, lm.full_subject,
                                         "the trailer names someone other than the sender "
                                         "(--sloppy takes it anyway)", [t.as_string()]))
        hit, how, why = matcher.target(lm, by_id)
        if hit is None:
            unmatched.append(Skipped(lm.msgid, sender, lm.full_subject, why, [t.as_string() for t in taken]))
            continue
        targets = range(len(commits)) if hit == "cover" else [hit]
        for t in taken:
            tr = Trailer(wanted[t.lname], t.value, sender, lm.msgid, how)
            for i in targets:
                a = additions[i]
                if tr.key() in have[i]:
                    if tr.key() not in {x.key() for x in a.present}:
                        a.present.append(tr)
                elif tr.key() not in added[i]:
                    # Given again (another reply, or the cover letter and the patch): once.
                    added[i].add(tr.key())
                    a.add.append(tr)
    return Plan(tree.branch, tip, len(by_id), additions, unmatched, not_taken)


# --- writing ------------------------------------------------------------------

def _trailer_block(message: str) -> tuple[list[str], list[str]]:
    """(the message's lines before its trailer block, the block's lines)."""
    lines = message.rstrip("\n").split("\n")
    end = len(lines)
    start = end
    # The subject (line 0) is never a trailer, however it looks.
    while start > 1 and lines[start - 1].strip() and TRAILER_LINE_RE.match(lines[start - 1]):
        start -= 1
    block = lines[start:end]
    if not block or not re.match(r"^[A-Za-z][A-Za-z0-9-]*: ", block[0]) or lines[start - 1].strip():
        # No block, or the "block" is the end of a paragraph of prose.
        return lines, []
    return lines[:start], block


def with_trailers(message: str, add: list[str]) -> str:
    """``message`` with ``add`` in its trailer block, before its last Signed-off-by."""
    head, block = _trailer_block(message)
    if not block:
        head = head + [""] if head and head[-1].strip() else head
        return "\n".join(head + add) + "\n"
    at = len(block)
    if block[-1].lower().startswith("signed-off-by:"):
        at -= 1
    return "\n".join(head + block[:at] + add + block[at:]) + "\n"


def apply(tree: Tree, p: Plan) -> str:
    """Rewrite the series branch with the plan's trailers; returns the new tip.

    Only messages change: every commit keeps its tree, author and committer
    (name, address and date), so an unchanged commit keeps its id and the
    work tree is untouched.  The old tip is kept under refs/ktest/backup/.
    """
    from .lock import held

    with held(tree, "series trailers"):
        tip, commits = series_commits(tree)
        if tip != p.tip:
            raise TrailersError(f"{tree.branch} moved from {p.tip[:12]} to {tip[:12]} since the replies were read",
                                hint="Run ktest series trailers again.")
        parent = tree.base
        for c, a in zip(commits, p.additions):
            if not a.add and c.parent == parent:
                parent = c.sha
                continue
            msg = with_trailers(c.message, [t.line for t in a.add])
            env = {"GIT_AUTHOR_NAME": c.author[0], "GIT_AUTHOR_EMAIL": c.author[1], "GIT_AUTHOR_DATE": c.author[2],
                   "GIT_COMMITTER_NAME": c.committer[0], "GIT_COMMITTER_EMAIL": c.committer[1],
                   "GIT_COMMITTER_DATE": c.committer[2]}
            parent = tree.git("commit-tree", c.tree, "-p", parent, "-F", "-", input=msg, env=env).stdout.strip()
        if parent == tip:
            return tip
        backup = f"{tree.refs}/backup/{time.strftime('%Y%m%d-%H%M%S')}-trailers"
        tree.git("update-ref", "-m", "ktest series trailers: before", backup, tip)
        # With the old value given, a branch that moved meanwhile is not overwritten.
        tree.git("update-ref", "-m", "ktest series trailers", f"refs/heads/{tree.branch}", parent, tip)
        return parent
