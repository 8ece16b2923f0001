"""Fixtures for the ktest mail tests: the tiny fake kernel tree with the real
kernel scripts, a known sender, and a local SMTP server (aiosmtpd on
127.0.0.1, nothing leaves the machine).
"""
import email
import email.policy
import os
import shutil
import socket
from pathlib import Path

import pytest

from ktest import cli, series, tree
from tests.conftest import git

SCRIPTS = ["scripts/get_maintainer.pl", "scripts/checkpatch.pl", "scripts/spelling.txt",
           "scripts/const_structs.checkpatch"]
MAINTAINERS = """\
VIRTIO CORE AND NET DRIVERS
M:	"Michael S. Tsirkin" <mst@redhat.com>
M:	Jason Wang <jasowang@redhat.com>
R:	Rita Reviewer <rita@example.org>
L:	virtualization@lists.linux-foundation.org
S:	Maintained
F:	drivers/virtio/

THE REST
M:	Linus Torvalds <torvalds@linux-foundation.org>
L:	linux-kernel@vger.kernel.org
S:	Buried alive in reporters
F:	*
F:	*/
"""
COVER = ("virtio_ring: two small changes\n\nThese make the fake ring better.\n\n"
         "They are only here to be mailed.\n")


@pytest.fixture(scope="module")
def kernel_scripts(tmp_path_factory):
    """The kernel's own scripts, from a prepared Debian tree.

    Looked up before any test changes KTEST_HOME: the integration tier's
    session home when it ran first, else the user's cache.
    """
    homes = [Path(os.environ["KTEST_HOME"])] if os.environ.get("KTEST_HOME") else []
    homes.append(Path.home() / ".cache" / "ktest")
    for h in homes:
        for t in sorted((h / "trees").glob("debian-*")):
            if all((t / s).is_file() for s in SCRIPTS):
                dest = tmp_path_factory.mktemp("kernel-scripts")
                for s in SCRIPTS:
                    (dest / s).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(t / s, dest / s)
                return dest
    pytest.fail("no prepared Debian kernel tree with scripts/get_maintainer.pl and scripts/checkpatch.pl "
                f"under {' or '.join(str(h / 'trees') for h in homes)}; run: ktest tree prepare")


@pytest.fixture
def git_identity(tmp_path, monkeypatch):
    """A known sender, whatever the machine's own git config says."""
    cfg = tmp_path / "gitconfig"
    cfg.write_text("[user]\n\tname = Sam Sender\n\temail = sam@example.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return cfg


SENDER_SOB = "Signed-off-by: Sam Sender <sam@example.org>"


def sign(path: Path) -> Path:
    """The sender's Signed-off-by at the end of the patch's chain, as a
    submitter's own series has it."""
    head, sep, rest = path.read_text().partition("\n---\n")
    path.write_text(head + "\n" + SENDER_SOB + sep + rest)
    return path


def _kernelise(repo: Path, scripts: Path, maintainers: str) -> None:
    """Make the fake tree pass get_maintainer.pl/checkpatch.pl's top-of-tree test."""
    for f in ("COPYING", "CREDITS", "Kbuild", "README"):
        (repo / f).write_text(f"{f}\n")
    for d in ("Documentation", "arch", "include", "fs", "init", "ipc", "kernel", "lib"):
        (repo / d).mkdir(exist_ok=True)
        (repo / d / "Makefile").write_text("# empty\n")
    (repo / "MAINTAINERS").write_text(maintainers)
    shutil.copytree(scripts / "scripts", repo / "scripts", dirs_exist_ok=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "kernel scripts and MAINTAINERS")


@pytest.fixture
def make_tree(fake_kernel, fake_series, ktest_home, kernel_scripts, git_identity, monkeypatch):
    def make(maintainers: str = MAINTAINERS, cover: str | None = COVER, signed: bool = True) -> tree.Tree:
        _kernelise(fake_kernel, kernel_scripts, maintainers)
        if cover is not None:
            (fake_series / "cover-letter.txt").write_text(cover)
        monkeypatch.setenv("KTEST_PATCHES", str(fake_series))
        if signed:
            for p in fake_series.glob("*.patch"):
                sign(p)
        t = tree.prepare_user(fake_kernel)
        series.apply(t, series.load(fake_series))
        return t
    return make


@pytest.fixture
def mail_tree(make_tree):
    return make_tree()


def _parse(path: Path):
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    assert not msg.defects, (path, msg.defects)
    return msg


def _ktest(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["mail", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult
    except ImportError:
        pytest.fail("aiosmtpd is not installed; the test extra has it: pip install -e '.[test]'")

    class Inbox:
        """Keeps what it accepts; ``reject`` holds the numbers (1-based) of
        DATA commands to refuse, each once, as a server refusing a message."""
        def __init__(self):
            self.envelopes = []
            self.reject: set[int] = set()
            self.attempts = 0

        async def handle_DATA(self, server, session, envelope):
            self.attempts += 1
            if self.attempts in self.reject:
                return "554 5.6.0 message refused by the test server"
            self.envelopes.append(envelope)
            return "250 OK"

    def auth(server, session, envelope, mechanism, data):
        # handled=False: aiosmtpd answers a refusal itself (535).
        return AuthResult(success=(data.login, data.password) == (b"sam", b"s3cret-pw"), handled=False)

    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=_free_port(), authenticator=auth,
                     auth_require_tls=False)
    ctl.start()
    try:
        yield ctl.port, inbox
    finally:
        ctl.stop()


def _smtp_config(t, port):
    for k, v in (("smtpServer", "127.0.0.1"), ("smtpServerPort", str(port)), ("smtpUser", "sam"),
                 ("smtpPass", "s3cret-pw"), ("from", "Sam Sender <sam@example.org>")):
        git(t.path, "config", f"sendemail.{k}", v)
