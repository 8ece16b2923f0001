"""Who sends the mail, and the sender's sign-off (the DCO).

A maintainer takes a patch when the last Signed-off-by in it is the person
who sends it: the chain records who handled the patch, in order, and the
sender is the last.  ``ktest mail`` refuses, naming the patch, when the
chain ends with someone else; ``--signoff`` appends the sender's line as
``git format-patch -s`` does (only where it is not already the last).
"""
from __future__ import annotations

import re
from pathlib import Path

from .. import addresses
from ..check import CHECKPATCH, CheckError, Problem
from ..run import run
from ..tree import Tree

# checkpatch's From/Signed-off-by message types.
FROM_SOB_TYPES = {"FROM_SIGN_OFF_MISMATCH", "NO_AUTHOR_SIGN_OFF", "MISSING_SIGN_OFF", "BAD_SIGN_OFF"}
# checkpatch --emacs: "FILE:LINE: ERROR:TYPE: message"
EMACS_RE = re.compile(r"^(.+?):(\d+): (ERROR|WARNING|CHECK):([A-Z0-9_]+): (.*)$")


def sender_ident(tree: Tree, first_commit: str) -> str:
    """Who the mail is from, decoded ("Name <addr>"): sendemail.from, else the
    user's git identity, else the first patch's author.  ktest's own
    identity in a Debian tree (ktest@localhost) is never used."""
    def get(*args: str) -> str:
        return tree.git("config", *args, check=False).stdout.strip()

    if get("--get", "sendemail.from"):
        return addresses.normalise(get("--get", "sendemail.from"))
    scope = ["--global"] if tree.kind == "debian" else []
    name, addr = get(*scope, "--get", "user.name"), get(*scope, "--get", "user.email")
    if name and addr:
        return addresses.plain(addresses.decode(name), addr)
    return addresses.normalise(tree.git("log", "-1", "--format=%an <%ae>", first_commit).stdout.strip())


def signoff_chains(tree: Tree, commits: list[str]) -> dict[str, list[str]]:
    """Each commit's Signed-off-by values, in order, as git parses trailers."""
    fmt = "%H%x01%(trailers:key=Signed-off-by,valueonly,separator=%x02)%x03"
    out = tree.git("log", "--no-walk=unsorted", f"--format={fmt}", *commits).stdout if commits else ""
    chains = {}
    for rec in out.split("\x03"):
        rec = rec.strip("\n")
        if "\x01" in rec:
            sha, sobs = rec.split("\x01", 1)
            chains[sha] = [s.strip() for s in sobs.split("\x02") if s.strip()]
    return chains


def unsigned(tree: Tree, commits: list[str], names: list[str], sender: str) -> list[Problem]:
    """A gate problem, named by its patch, for each patch whose Signed-off-by
    chain ends with someone other than ``sender`` (compared by address, as
    checkpatch does).  A patch with no Signed-off-by at all is the gate's
    own "signoff" problem already."""
    want = addresses.key(sender)
    chains = signoff_chains(tree, commits)
    out = []
    for sha, name in zip(commits, names):
        chain = chains.get(sha, [])
        if chain and addresses.key(chain[-1]) != want:
            out.append(Problem(name, "signoff", f"the Signed-off-by chain ends with {addresses.decode(chain[-1])}, "
                                                f"not with the sender {sender}"))
    return out


SIGNOFF_HINT = ("Pass --signoff to add the sender's Signed-off-by (as git format-patch -s does), or mail as the "
                "person who signed off last (git config sendemail.from, or user.name and user.email).")


def check_messages(tree: Tree, files: list[Path], names: list[str]) -> list[Problem]:
    """checkpatch's From/Signed-off-by checks on the messages as they will be
    sent (the sender's From: header, the author's in-body From:), named by
    ``names``.  One checkpatch run for all, limited to those types: about a
    second for 18 messages, where a full run per message takes two each."""
    if not files:
        return []
    if not (tree.path / CHECKPATCH).is_file():
        raise CheckError(f"{tree.path / CHECKPATCH} does not exist; cannot check the messages")
    r = run(["perl", CHECKPATCH, "--strict", "--show-types", "--no-summary", "--color=never", "--emacs",
             "--types", ",".join(sorted(FROM_SOB_TYPES)), *map(str, files)],
            cwd=tree.path, timeout=300, check=False, what="checkpatch.pl (From and Signed-off-by)")
    by_path = {str(f): n for f, n in zip(files, names)}
    problems = []
    for line in r.stdout.splitlines():
        m = EMACS_RE.match(line)
        if m and m.group(1) in by_path:
            problems.append(Problem(by_path[m.group(1)], f"checkpatch {m.group(3)}", m.group(5),
                                    line=int(m.group(2)), type=m.group(4)))
    if r.returncode != 0 and not problems:
        detail = (r.stderr or r.stdout).strip().splitlines()
        problems.append(Problem(names[0], "checkpatch", f"exit {r.returncode}: {detail[-1] if detail else 'no output'}"))
    return problems
