"""Mailing-list-ready patch mail for the series branch, and sending it.

The messages are made by ``git format-patch`` (cover letter, shallow
threading, ``--base``, ``-v N``, ``--range-diff``) from the tree's series
branch, so a maintainer's ``git am`` gives back exactly that branch.  ktest
only fills in the cover letter: the template kept with the series
(``patches/cover-letter.txt``), the benchmark table, and "Changes in vN".

Each mailed version is recorded in the tree as refs, so the next version
can be compared with it:

    refs/ktest/mail/vN        the series tip that was mailed as vN
    refs/ktest/mail/vN-base   its base
    refs/ktest/mail/vN-meta   a blob: JSON with the changelog and message ids

Nothing leaves the machine unless ``send`` is called, and the files in the
output directory are byte for byte what ``send`` delivers.
"""
from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import json
import re
import shutil
import smtplib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import bench, check, maintainers, paths
from .errors import BenchError, KtestError
from .run import run
from .tree import Tree

MAIL_JSON = "mail.json"
CHANGES_RE = re.compile(r"^Changes in v\d+:", re.M)


class MailError(KtestError):
    """The series cannot be mailed as asked."""


# The gate is ``series check``'s per-patch check (ktest/check.py).
Problem = check.Problem
gate = check.gate
mailinfo = check.mailinfo


# --- versions -----------------------------------------------------------


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
    the files, look at them, then ``--send``); a changed series needs a
    higher version than any recorded, unless ``force``.
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
    return version


def record(tree: Tree, version: int, tip: str, base: str, meta: dict) -> None:
    blob = tree.git("hash-object", "-w", "--stdin", input=json.dumps(meta, indent=1) + "\n").stdout.strip()
    for suffix, obj in (("", tip), ("-base", base), ("-meta", blob)):
        tree.git("update-ref", "-m", f"ktest mail v{version}", f"{tree.refs}/mail/v{version}{suffix}", obj)


def _commits(tree: Tree, base: str, tip: str) -> list[tuple[str, str]]:
    out = tree.git("log", "--reverse", "--no-merges", "--format=%H %s", f"{base}..{tip}").stdout
    return [tuple(ln.split(" ", 1)) for ln in out.splitlines() if ln]


def _patch_id(tree: Tree, commit: str) -> str:
    diff = tree.git("show", "--format=", commit).stdout
    return run(["git", "patch-id", "--stable"], input=diff, timeout=60).stdout.split(" ")[0]


def _message(tree: Tree, commit: str) -> str:
    return tree.git("log", "-1", "--format=%B", commit).stdout.strip()


def changelog(tree: Tree, version: int, previous: Mailed, base: str, tip: str) -> str:
    """A "Changes in vN" skeleton: what differs from the previous version."""
    old, new = _commits(tree, previous.base, previous.tip), _commits(tree, base, tip)
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


# --- the cover letter ---------------------------------------------------


def load_template(path: Path) -> tuple[str, str]:
    """Title and body of the cover letter template: title line, blank line, body."""
    if not path.is_file():
        raise MailError(f"{path}: no cover letter template",
                        hint="Write the series title on the first line, a blank line, then why the series is needed.")
    lines = path.read_text().splitlines()
    title = lines[0].strip() if lines else ""
    if not title:
        raise MailError(f"{path}:1: the first line must be the series title")
    if len(lines) > 1 and lines[1].strip():
        raise MailError(f"{path}:2: the title must be followed by a blank line")
    body = "\n".join(lines[2:]).strip("\n")
    if not body.strip():
        raise MailError(f"{path}: no body after the title: say why the series is needed")
    return title, body


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


# --- the messages -------------------------------------------------------


@dataclass
class Message:
    path: Path
    subject: str
    message_id: str
    in_reply_to: str = ""
    commit: str = ""        # empty for the cover letter


@dataclass
class MailOptions:
    version: int | None = None
    rfc: bool = False
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    out: Path | None = None
    force: bool = False
    bench: Path | None = None
    cover_template: Path | None = None      # default: cover-letter.txt in the patches directory


@dataclass
class MailSet:
    directory: Path
    version: int
    rfc: bool
    base: str
    tip: str
    sender: str
    to: list[str]
    cc: list[str]
    messages: list[Message]     # the cover letter first
    title: str
    blurb: str
    previous: int | None = None
    bench: Path | None = None
    problems: list[Problem] = field(default_factory=list)   # let through by --force

    @property
    def cover(self) -> Message:
        return self.messages[0]

    @property
    def patches(self) -> list[Message]:
        return self.messages[1:]

    def report(self) -> str:
        since = f", changes since v{self.previous}" if self.previous else ""
        lines = [f"v{self.version}{' RFC' if self.rfc else ''}: {len(self.patches)} patches and a cover letter"
                 f"{since}, base-commit {self.base[:12]}"]
        lines += [f"  {m.path.name}  {m.subject}" for m in self.messages]
        lines += [f"To: {', '.join(self.to)}", f"Cc: {', '.join(self.cc) or '-'}"]
        if self.bench:
            lines.append(f"benchmark table from {self.bench}")
        lines += [f"check failed, mailed anyway (--force): {p}" for p in self.problems]
        return "\n".join(lines)


def read_message(path: Path) -> Message:
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    unixfrom = (msg.get_unixfrom() or "").split()
    return Message(path, " ".join(str(msg.get("Subject", "")).split()), str(msg.get("Message-Id", "")).strip(),
                   str(msg.get("In-Reply-To", "") or "").strip(),
                   unixfrom[1] if len(unixfrom) > 1 else "")


def sender_ident(tree: Tree, first_commit: str) -> str:
    """Who the mail is from: sendemail.from, else the user's git identity,
    else the first patch's author.  ktest's own identity in a Debian tree
    (ktest@localhost) is never used."""
    def get(*args: str) -> str:
        return tree.git("config", *args, check=False).stdout.strip()

    if get("--get", "sendemail.from"):
        return maintainers.normalise(get("--get", "sendemail.from"))
    scope = ["--global"] if tree.kind == "debian" else []
    name, addr = get(*scope, "--get", "user.name"), get(*scope, "--get", "user.email")
    if name and addr:
        return email.utils.formataddr((name, addr))
    return tree.git("log", "-1", "--format=%an <%ae>", first_commit).stdout.strip()


def format_patch(tree: Tree, base: str, tip: str, outdir: Path, *, version: int = 1, rfc: bool = False,
                 sender: str | None = None, to: list[str] = (), cc: list[str] = (),
                 previous: Mailed | None = None) -> list[Path]:
    """``git format-patch`` of base..tip with a cover letter.  Without
    ``sender``, each patch is From its author, as the files in patches/ are."""
    args = ["format-patch", "--cover-letter", "--cover-from-description=none", "--thread=shallow",
            "--numbered", "--no-signoff",
            f"--subject-prefix={'RFC PATCH' if rfc else 'PATCH'}", f"--base={base}",
            # A user's diff.noprefix would give patches git am cannot apply.
            "--src-prefix=a/", "--dst-prefix=b/",
            # format.to/format.cc from the user's config are dropped: the
            # recipients are decided here and listed in mail.json.
            "--no-to", "--no-cc", *[f"--to={a}" for a in to], *[f"--cc={a}" for a in cc],
            "-o", str(outdir)]
    if version > 1:
        args += ["-v", str(version)]
    if previous is not None:
        args.append(f"--range-diff={previous.base}..{previous.tip}")
    env = None
    if sender:
        # The patches' From: is --from (the author moves into the body, for
        # git am); the cover letter's From: and every Message-Id come from
        # the committer.
        name, addr = email.utils.parseaddr(sender)
        args.append(f"--from={sender}")
        env = {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": addr}
    out = tree.git(*args, f"{base}..{tip}", env=env).stdout
    return [Path(p) for p in out.splitlines() if p.strip()]


def series_range(tree: Tree) -> tuple[str, str]:
    r = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}^{{commit}}", check=False)
    if r.returncode != 0:
        raise MailError(f"{tree.path} has no series branch {tree.branch}", hint="Run: ktest series apply")
    tip = r.stdout.strip()
    if not _commits(tree, tree.base, tip):
        raise MailError(f"{tree.branch} has no commits on top of its base {tree.base_ref} ({tree.base[:12]})")
    return tree.base, tip


def _output_dir(out: Path | None, tree: Tree, version: int) -> Path:
    if out is None:
        return paths.home() / "mail" / f"{tree.path.name}-v{version}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise MailError(f"--out {out} is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MAIL_JSON).is_file():
        raise MailError(f"--out {out} is not empty and holds no {MAIL_JSON} from an earlier ktest mail",
                        hint="Name a new or empty directory.")
    return out


def _clear_previous(out: Path) -> None:
    """Remove the files an earlier ``ktest mail`` wrote into ``out``."""
    try:
        old = json.loads((out / MAIL_JSON).read_text())
    except (OSError, json.JSONDecodeError):
        return
    for m in old.get("messages", []):
        (out / Path(m.get("file", "")).name).unlink(missing_ok=True)
    shutil.rmtree(out / "b4", ignore_errors=True)


def changes_text(tree: Tree, body: str, version: int, previous: Mailed | None, base: str, tip: str) -> str:
    """This version's changelog skeleton over the previous versions' ones.

    A template that has its own "Changes in vN:" lines keeps the whole
    changelog itself, so ktest adds nothing.
    """
    if previous is None or CHANGES_RE.search(body):
        return ""
    text = changelog(tree, version, previous, base, tip)
    older = previous.meta.get("changes", "")
    return f"{text}\n\n{older}" if older else text


def _problem_list(problems: list[Problem]) -> str:
    return "\n".join(f"  {p}" for p in problems)


def prepare(tree: Tree, opts: MailOptions) -> MailSet:
    """Check the series, find its recipients and write the messages.

    Every check runs before anything is written: a series that fails the
    gate, has no recipients, or reuses a version leaves no files behind.
    """
    base, tip = series_range(tree)
    history = recorded(tree)
    version = choose_version(history, opts.version, tip, base, opts.force)
    prev_n = max((v for v in history if v < version), default=None)
    previous = history.get(prev_n) if prev_n else None
    template = opts.cover_template or paths.patches_dir() / "cover-letter.txt"
    title, body = load_template(template)
    results = opts.bench or latest_results(tip)
    doc = bench.read_results(results) if results else None
    sender = sender_ident(tree, _commits(tree, base, tip)[0][0])
    out = _output_dir(opts.out, tree, version)
    tmp = Path(tempfile.mkdtemp(prefix="ktest-mail-"))
    try:
        # The checks and get_maintainer.pl read a draft made like the files
        # in patches/, so checkpatch's patch line numbers match those.
        draft = format_patch(tree, base, tip, tmp / "draft")
        problems = gate(tree, draft[1:])
        if problems and not opts.force:
            raise MailError(f"the series fails the mail gate ({len(problems)} problem(s)); nothing written:\n"
                            + _problem_list(problems), hint="Fix the patches, or pass --force to mail them anyway.")
        rcpt = maintainers.recipients(tree, draft[1:], to=opts.to, cc=opts.cc)
        if not rcpt:
            raise MailError(f"no recipients: {maintainers.SCRIPT} found nobody for "
                            f"{', '.join(p.name for p in draft[1:])}, and no --to/--cc was given")
        changes = changes_text(tree, body, version, previous, base, tip)
        text = blurb(body, bench_section(doc, tip) if doc else "", changes)
        files = format_patch(tree, base, tip, tmp / "final", version=version, rfc=opts.rfc, sender=sender,
                             to=rcpt.to, cc=rcpt.cc, previous=previous)
        fill_cover(files[0], title, text)

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
                 prev_n, Path(results) if results else None, problems)
    write_summary(ms, tree)
    record(tree, version, tip, base, {
        "version": version, "rfc": opts.rfc, "changes": changes, "directory": str(out),
        "cover_message_id": ms.cover.message_id, "subjects": [m.subject for m in messages],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return ms


def write_summary(ms: MailSet, tree: Tree) -> Path:
    doc = {
        "format": 1, "version": ms.version, "rfc": ms.rfc, "tree": str(tree.path), "branch": tree.branch,
        "base_ref": tree.base_ref, "base_commit": ms.base, "tip": ms.tip, "previous_version": ms.previous,
        "from": ms.sender, "to": ms.to, "cc": ms.cc, "bench": str(ms.bench) if ms.bench else None,
        "messages": [{"file": m.path.name, "subject": m.subject, "message_id": m.message_id,
                      "in_reply_to": m.in_reply_to or None, "commit": m.commit or None} for m in ms.messages],
        "gate_ignored": [str(p) for p in ms.problems],
    }
    path = ms.directory / MAIL_JSON
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


# --- sending ------------------------------------------------------------


@dataclass
class SmtpConfig:
    server: str
    port: int
    encryption: str = ""        # "", "tls" (STARTTLS) or "ssl"
    user: str = ""
    password: str = field(default="", repr=False)
    sender: str = ""            # sendemail.from

    def describe(self) -> str:
        how = {"tls": " with STARTTLS", "ssl": " over SSL"}.get(self.encryption, "")
        return f"{self.server}:{self.port}{how}" + (f" as {self.user}" if self.user else "")


def smtp_config(tree: Tree) -> SmtpConfig:
    """SMTP settings from git config sendemail.*, as git send-email reads them."""
    def get(key: str) -> str:
        return tree.git("config", "--get", f"sendemail.{key}", check=False).stdout.strip()

    server = get("smtpServer")
    if not server:
        raise MailError("--send needs an SMTP server, and git config has no sendemail.smtpServer",
                        hint="git config --global sendemail.smtpServer HOST (and smtpServerPort, "
                             "smtpEncryption, smtpUser, smtpPass, from)")
    if "/" in server:
        raise MailError(f"sendemail.smtpServer is a local command ({server}); ktest sends by SMTP only")
    enc = get("smtpEncryption").lower()
    enc = {"starttls": "tls", "smtps": "ssl", "none": ""}.get(enc, enc)
    if enc not in ("", "tls", "ssl"):
        raise MailError(f"sendemail.smtpEncryption={enc}: use tls, ssl or nothing")
    port_text = get("smtpServerPort") or {"ssl": "465", "tls": "587"}.get(enc, "25")
    if not port_text.isdigit():
        raise MailError(f"sendemail.smtpServerPort={port_text} is not a port number")
    user, password = get("smtpUser"), get("smtpPass")
    if user and not password:
        raise MailError("sendemail.smtpUser is set but sendemail.smtpPass is not; ktest does not ask for passwords")
    return SmtpConfig(server, int(port_text), enc, user, password, get("from"))


def b4_version() -> str:
    if shutil.which("b4") is None:
        raise MailError("--via b4 needs the b4 command, from the PyPI package 'b4', and it is not installed",
                        hint="pip install b4")
    return run(["b4", "--version"], timeout=60, what="b4 --version").stdout.strip()


def preflight(tree: Tree, *, send: bool, yes: bool, interactive: bool, via: str = "git") -> SmtpConfig | None:
    """What must hold before anything is written: b4 for --via b4, SMTP
    settings and a way to confirm for --send."""
    if via == "b4":
        b4_version()
    if not send:
        return None
    cfg = smtp_config(tree)
    if not yes and not interactive:
        raise MailError("--send asks for confirmation and there is no terminal to ask on",
                        hint="Pass --yes to send without asking.")
    return cfg


def send_summary(ms: MailSet, cfg: SmtpConfig) -> str:
    lines = [f"About to send {len(ms.messages)} messages from {cfg.sender or ms.sender} via {cfg.describe()}",
             f"to {len(ms.to) + len(ms.cc)} recipients (To: {', '.join(ms.to)}"
             + (f"; Cc: {', '.join(ms.cc)})" if ms.cc else ")")]
    lines += [f"  {m.subject}" for m in ms.messages]
    return "\n".join(lines)


def _wire(raw: bytes) -> bytes:
    """The file as an SMTP message: no mbox "From " line, CRLF line ends."""
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1]
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def send(ms: MailSet, cfg: SmtpConfig, *, timeout: float = 60) -> int:
    """Deliver the messages, cover letter first.  Returns how many were sent."""
    envelope = email.utils.parseaddr(cfg.sender or ms.sender)[1]
    sent = 0
    current = ms.messages[0].path.name
    try:
        cls = smtplib.SMTP_SSL if cfg.encryption == "ssl" else smtplib.SMTP
        with cls(cfg.server, cfg.port, timeout=timeout) as smtp:
            if cfg.encryption == "tls":
                smtp.starttls()
            if cfg.user:
                smtp.login(cfg.user, cfg.password)
            for m in ms.messages:
                current = m.path.name
                raw = m.path.read_bytes()
                msg = email.message_from_bytes(raw)
                rcpts = [a for _, a in email.utils.getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []))]
                smtp.sendmail(envelope, rcpts, _wire(raw))
                sent += 1
    except (smtplib.SMTPException, OSError) as e:
        raise MailError(f"sending {current} via {cfg.server}:{cfg.port} failed after {sent} of "
                        f"{len(ms.messages)} messages: {e}") from e
    summary = ms.directory / MAIL_JSON
    doc = json.loads(summary.read_text())
    doc["sent"] = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "server": cfg.describe(),
                   "messages": sent}
    summary.write_text(json.dumps(doc, indent=2) + "\n")
    return sent


# --- b4 -----------------------------------------------------------------


@dataclass
class B4Comparison:
    directory: Path
    files: list[Path]
    differences: list[str]
    version: str

    def report(self) -> str:
        head = f"b4 {self.version} wrote {len(self.files)} messages to {self.directory}: "
        if not self.differences:
            return head + "same patches and subjects as ktest's"
        return head + f"{len(self.differences)} difference(s):\n" + "\n".join(f"  {d}" for d in self.differences)


def _subject_key(subject: str) -> tuple[frozenset, str]:
    """The bracket tags as a set (b4 writes "PATCH RFC", git "RFC PATCH") and the summary."""
    m = re.match(r"^\[([^\]]*)\]\s*(.*)$", subject)
    return (frozenset(m.group(1).split()), m.group(2)) if m else (frozenset(), subject)


def _content(path: Path) -> tuple[str, str]:
    """Commit message and patch-id: what a maintainer's git am would apply."""
    _info, body, diff = mailinfo(path.read_text(errors="replace"), path.name)
    pid = run(["git", "patch-id", "--stable"], input=diff, timeout=60).stdout.split(" ")[0] if diff else ""
    return body.strip(), pid


def compare(ours: list[Path], theirs: list[Path]) -> list[str]:
    diffs = []
    if len(ours) != len(theirs):
        diffs.append(f"ktest wrote {len(ours)} messages, b4 {len(theirs)}")
    for a, b in zip(ours, theirs):
        sa, sb = read_message(a).subject, read_message(b).subject
        if _subject_key(sa) != _subject_key(sb):
            diffs.append(f"{a.name}: subject '{sa}', b4 {b.name}: '{sb}'")
    for a, b in list(zip(ours, theirs))[1:]:
        (ma, pa), (mb, pb) = _content(a), _content(b)
        if pa != pb:
            diffs.append(f"{a.name}: the diff differs from b4's {b.name}")
        if ma != mb:
            diffs.append(f"{a.name}: the commit message differs from b4's {b.name}")
    return diffs


def via_b4(tree: Tree, ms: MailSet) -> B4Comparison:
    """Have b4 make the same series (``b4 prep`` + ``b4 send -o``) and compare.

    b4 works in a scratch clone, so its prep branch, cover letter and
    tracking config never touch ktest's tree.  The clone is sparse with
    nothing checked out: b4 needs a clean status, and a kernel tree's
    Kconfig at the top would make it choose its web endpoint.
    """
    version = b4_version()
    out = ms.directory / "b4"
    shutil.rmtree(out, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix="ktest-b4-"))
    try:
        clone = scratch / "repo"
        run(["git", "clone", "-q", "--shared", "--no-checkout", "--single-branch", "--branch", tree.branch,
             str(tree.path), str(clone)], timeout=600, what="git clone for b4")

        def git(*args: str) -> None:
            run(["git", "-C", str(clone), *args], timeout=600)

        name, addr = email.utils.parseaddr(ms.sender)
        git("branch", "ktest-base", ms.base)
        for k, v in (("user.name", name), ("user.email", addr), ("b4.prep-cover-strategy", "branch-description")):
            git("config", k, v)
        git("sparse-checkout", "set", "--no-cone", "/.ktest-b4-nothing")
        git("checkout", "-q", tree.branch)
        # b4 asks with input() when it wants something; with stdin closed and
        # an editor that changes nothing it can only fail, never hang.
        env = {"GIT_EDITOR": "true", "EDITOR": "true", "VISUAL": "true",
               "XDG_CACHE_HOME": str(scratch / "cache"), "XDG_DATA_HOME": str(scratch / "data")}

        def b4(*args: str) -> None:
            run(["b4", *args], cwd=clone, env=env, timeout=600, what=f"b4 {args[0]}")

        b4("prep", "-e", "ktest-base")
        if ms.version > 1:
            b4("prep", "--force-revision", str(ms.version))
        if ms.rfc:
            b4("prep", "--set-prefixes", "RFC")
        git("config", f"branch.{tree.branch}.description", f"{ms.title}\n\n{ms.blurb}\n")
        args = ["send", "-o", str(out), "--no-sign", "--no-trailer-to-cc", "--to", *ms.to]
        if ms.cc:
            args += ["--cc", *ms.cc]
        b4(*args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    files = sorted(out.glob("*.eml"))
    return B4Comparison(out, files, compare([m.path for m in ms.messages], files), version)
