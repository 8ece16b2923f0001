"""The checks of ``series check --full`` that need no build: kernel-doc on
the files a patch changes, Signed-off-by and From, Fixes: tags, and whether
the mail's recipients cover get_maintainer.pl.  As in netdev's CI
(kdoc, verify_signedoff, verify_fixes, cc_maintainers).
"""
from __future__ import annotations

import email
import email.policy
import email.utils
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import maintainers
from ..run import run
from ..tree import Tree
from .builds import Diag, parse_diags

KERNEL_DOC = "scripts/kernel-doc"
SOB_RE = re.compile(r"^Signed-off-by:\s*(.+)$", re.M | re.I)
FIXES_RE = re.compile(r"^Fixes:\s*(.*)$", re.M | re.I)
FIXES_FORM_RE = re.compile(r'^([0-9a-f]+) \("(.+)"\)$')


@dataclass
class Verdict:
    result: str             # pass | fail | skip
    message: str = ""       # the first problem (or why skipped)
    file: str = ""
    line: int = 0
    details: list[str] | None = None


def kernel_doc(tree: Tree, commit: str, files: list[str]) -> list[Diag]:
    """``scripts/kernel-doc -none`` on those of ``files`` that have kernel-doc
    comments at ``commit``, read from git (no checkout), with the tree's own script."""
    with tempfile.TemporaryDirectory(prefix="ktest-kdoc-") as tmp:
        docs = []
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            r = tree.git("show", f"{commit}:{f}", check=False)
            if r.returncode != 0 or "/**" not in r.stdout:
                continue                    # gone at this commit, or no kernel-doc comment
            dest = Path(tmp, f)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(r.stdout)
            docs.append(f)
        if not docs:
            return []
        r = run(["perl", str(tree.path / KERNEL_DOC), "-none", *docs], cwd=tmp, timeout=300, check=False,
                what="scripts/kernel-doc")
        return parse_diags(r.stdout + r.stderr, Path(tmp))


def _addr(value: str) -> str:
    return email.utils.parseaddr(value)[1].lower()


def signoff(message: str, author_email: str) -> Verdict:
    sobs = [_addr(v) for v in SOB_RE.findall(message)]
    if not sobs:
        return Verdict("fail", "no Signed-off-by: line")
    if author_email.lower() not in sobs:
        return Verdict("fail", f"the author (From: {author_email}) has not signed off "
                               f"(Signed-off-by: {', '.join(sobs)})")
    return Verdict("pass")


def fixes(tree: Tree, message: str, commit: str) -> Verdict:
    """Every Fixes: tag is ``Fixes: <12+ hex> ("subject")``, names a commit of the
    tree that the patch is built on, and quotes that commit's subject."""
    problems, unchecked = [], []
    for value in FIXES_RE.findall(message):
        value = value.strip()
        m = FIXES_FORM_RE.match(value)
        if not m:
            problems.append(f"'Fixes: {value}' is not in the form Fixes: <12 hex digits> (\"subject\")")
            continue
        sha, subject = m.groups()
        if len(sha) < 12:
            problems.append(f"Fixes: {sha}: use at least 12 characters of the commit id")
        r = tree.git("rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}", check=False)
        if r.returncode != 0 and not tree.has_history():
            unchecked.append(sha)
            continue
        if r.returncode != 0:
            problems.append(f"Fixes: {sha} names no commit in {tree.path} (a Debian source tree has no "
                            "history: prepare the tree with --tree and a git kernel)")
            continue
        full = r.stdout.strip()
        if tree.git("merge-base", "--is-ancestor", full, commit, check=False).returncode != 0:
            problems.append(f"Fixes: {sha} is not an ancestor of this patch")
        real = tree.git("log", "-1", "--format=%s", full).stdout.strip()
        if real != subject:
            problems.append(f"Fixes: {sha} quotes \"{subject}\", the commit's subject is \"{real}\"")
    if problems:
        return Verdict("fail", problems[0], details=problems)
    if unchecked:
        return Verdict("skip", f"Fixes: {', '.join(unchecked)} not looked up: the tree has no history "
                               "before its base (prepare it with --tree from a git kernel)")
    return Verdict("pass")


def mail_messages(tree: Tree, directory: Path | None) -> dict[str, email.message.EmailMessage]:
    """patch-id -> message, for the patch mails in ``directory`` (default: the
    directory of the newest version ``ktest mail`` recorded)."""
    if directory is None:
        directory = _newest_mail_dir(tree)
        if directory is None:
            return {}
    out = {}
    for f in sorted(Path(directory).iterdir()):
        if not f.is_file() or f.suffix not in (".patch", ".eml", ".mbox", ""):
            continue
        msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        if "\ndiff --git " not in text:
            continue
        r = run(["git", "patch-id", "--stable"], input=text, timeout=60, check=False, what="git patch-id")
        if r.stdout.strip():
            out[r.stdout.split()[0]] = msg
    return out


def _newest_mail_dir(tree: Tree) -> Path | None:
    r = tree.git("for-each-ref", "--sort=-creatordate", "--format=%(refname) %(objectname)",
                 f"{tree.refs}/mail/", check=False)
    best = None
    for line in r.stdout.splitlines():
        ref, _, sha = line.partition(" ")
        m = re.search(r"/v(\d+)-meta$", ref)
        if not m:
            continue
        try:
            d = Path(json.loads(tree.git("cat-file", "blob", sha).stdout)["directory"])
        except (KeyError, ValueError, TypeError):
            continue
        if d.is_dir() and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), d)
    return best[1] if best else None


def recipients_cover(tree: Tree, commit: str, msg: email.message.EmailMessage | None) -> Verdict:
    """Everyone get_maintainer.pl names for the patch is in the mail's To or Cc."""
    if msg is None:
        return Verdict("skip", "no mail of this patch (same patch-id) to check: `ktest mail` writes one, "
                               "or pass --mail DIR")
    with tempfile.TemporaryDirectory(prefix="ktest-cc-") as tmp:
        out = tree.git("format-patch", "-1", "-o", tmp, commit).stdout.strip().splitlines()[-1]
        wanted = maintainers.get_maintainer(tree, [Path(out)], maintainers.TO_ROLES) + \
            maintainers.get_maintainer(tree, [Path(out)], maintainers.CC_ROLES)
    have = {a.lower() for _, a in email.utils.getaddresses(
        [str(v) for h in ("To", "Cc") for v in msg.get_all(h, [])])}
    missing = [w for w in dict.fromkeys(wanted) if _addr(w) not in have]
    if missing:
        return Verdict("fail", f"not in To/Cc of '{msg.get('Subject', '')}': {', '.join(missing)}", details=missing)
    return Verdict("pass", f"{len(set(map(_addr, wanted)))} address(es) from get_maintainer.pl all in To/Cc")
