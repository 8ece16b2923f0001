"""The parts of series check --full that need no kernel build: warning
parsing and deltas, kernel-doc, Signed-off-by, Fixes:, Cc.  Real git on the
tiny fake tree; the kernel's own kernel-doc and get_maintainer.pl."""
import os
import re
import shutil
from pathlib import Path

import pytest

from ktest import mail, series, tree
from ktest.fullcheck import added_lines, static
from ktest.fullcheck.builds import Diag, added, by_object, parse_diags
from tests.conftest import git
from tests.unit.conftest import make_patch
from tests.unit.mailkit import git_identity, kernel_scripts, mail_tree, make_tree  # noqa: F401 (fixtures)

SRC = Path("/k/src")
W1_LOG = f"""\
  CC [M]  drivers/net/virtio_net.o
{SRC}/drivers/net/virtio_net.c:120:5: warning: no previous prototype for 'foo' [-Wmissing-prototypes]
  120 | int foo(void)
{SRC}/include/linux/virtio_net.h:10:1: warning: 'bar' defined but not used [-Wunused-function]
  CC [M]  drivers/vhost/net.o
{SRC}/include/linux/virtio_net.h:10:1: warning: 'bar' defined but not used [-Wunused-function]
{SRC}/drivers/vhost/net.c:7:9: error: 'x' undeclared (first use in this function)
drivers/vhost/net.o: warning: objtool: handle_rx()+0x1f: unreachable instruction
  CHECK   {SRC}/drivers/net/virtio_net.c
  CHECK   {SRC}/drivers/vhost/net.c
drivers/vhost/net.c:99:17: warning: incorrect type in assignment (different base types)
"""


def test_diagnostics_per_object():
    per = by_object(W1_LOG, ["drivers/net/virtio_net.o", "drivers/vhost/net.o"], SRC)
    assert [str(d) for d in per["drivers/net/virtio_net.o"]] == [
        "drivers/net/virtio_net.c:120: warning: no previous prototype for 'foo' [-Wmissing-prototypes]",
        "include/linux/virtio_net.h:10: warning: 'bar' defined but not used [-Wunused-function]"]
    assert [str(d) for d in per["drivers/vhost/net.o"]] == [
        "include/linux/virtio_net.h:10: warning: 'bar' defined but not used [-Wunused-function]",
        "drivers/vhost/net.c:7: error: 'x' undeclared (first use in this function)",
        "drivers/vhost/net.o: warning: objtool: handle_rx()+0x1f: unreachable instruction",
        "drivers/vhost/net.c:99: warning: incorrect type in assignment (different base types)"]
    # The header's warning, seen from two objects, is one warning.
    assert len(parse_diags(W1_LOG, SRC)) == 5


def test_only_added_warnings_count():
    w = lambda line, msg, f="a.c": Diag(f, line, "warning", msg)  # noqa: E731
    before = [w(10, "unused variable 'i'"), w(20, "old one")]
    # Code added above moves the old warnings; one new, and a second instance of an old text.
    after = [w(14, "unused variable 'i'"), w(24, "old one"), w(30, "new one"), w(40, "unused variable 'i'")]
    assert added(before, after) == [w(30, "new one"), w(40, "unused variable 'i'")]
    # Of two same-text warnings, the one on a line the patch added is the new one.
    assert added(before, after, {"a.c": {14}}) == [w(14, "unused variable 'i'"), w(30, "new one")]
    assert added(after, before) == []


def test_added_lines(fake_kernel, fake_series, ktest_home):
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    one, two = git(t.path, "rev-list", "--reverse", f"{t.base}..{t.branch}").split()
    assert added_lines(t, one, two) == {"drivers/virtio/virtio_ring.c": {20}}


def test_signoff():
    assert static.signoff("x\n\nSigned-off-by: A <a@x.org>\n", "a@x.org").result == "pass"
    assert static.signoff("x\n\nSigned-off-by: A <A@X.org>\n", "a@x.org").result == "pass"
    v = static.signoff("x\n\nSigned-off-by: B <b@x.org>\n", "a@x.org")
    assert v.result == "fail" and "a@x.org" in v.message and "b@x.org" in v.message
    assert static.signoff("x\n\nwhy\n", "a@x.org").message == "no Signed-off-by: line"


def test_fixes(fake_kernel, fake_series, ktest_home):
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    one, two = git(t.path, "rev-list", "--reverse", f"{t.base}..{t.branch}").split()
    good = f'x\n\nFixes: {one[:12]} ("virtio_ring: first change")\nSigned-off-by: A <a@x.org>\n'
    assert static.fixes(t, good, two).result == "pass"
    assert static.fixes(t, "x\n\nno tags\n", two).result == "pass"
    short = static.fixes(t, f'x\n\nFixes: {one[:8]} ("virtio_ring: first change")\n', two)
    assert short.result == "fail" and "at least 12 characters" in short.message
    assert "is not in the form" in static.fixes(t, f"x\n\nFixes: {one[:12]}\n", two).message
    # The fake tree's base is a root commit, as a Debian source tree's is:
    # an id that is not there cannot be called wrong, only not looked up.
    assert not t.has_history()
    unknown = 'x\n\nFixes: 0123456789ab ("nothing")\n'
    v = static.fixes(t, unknown, two)
    assert v.result == "skip" and "0123456789ab not looked up" in v.message
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tree.Tree, "has_history", lambda self: True)
        assert "names no commit" in static.fixes(t, unknown, two).message
    assert "quotes \"wrong\"" in static.fixes(t, f'x\n\nFixes: {one[:12]} ("wrong")\n', two).message
    assert "not an ancestor" in static.fixes(t, f'x\n\nFixes: {two[:12]} ("virtio_ring: second change")\n',
                                             one).message


def test_has_history(tmp_path):
    for n in (1, 2):
        repo = tmp_path / f"r{n}"
        repo.mkdir()
        git(repo, "init", "-q")
        for i in range(n):
            (repo / "f").write_text(str(i))
            git(repo, "add", "f")
            git(repo, "-c", "user.name=T", "-c", "user.email=t@x.org", "commit", "-q", "-m", f"c{i}")
        base = git(repo, "rev-parse", "HEAD").strip()
        t = tree.Tree(path=repo, base=base, base_ref="HEAD", version="6.1.0", kind="user")
        assert t.has_history() == (n == 2)


@pytest.fixture(scope="module")
def kernel_doc_script(tmp_path_factory):
    """scripts/kernel-doc from a prepared Debian tree (looked up as test_mail's kernel_scripts is)."""
    homes = [Path(os.environ["KTEST_HOME"])] if os.environ.get("KTEST_HOME") else []
    homes.append(Path.home() / ".cache" / "ktest")
    for h in homes:
        for t in sorted((h / "trees").glob("debian-*")):
            if (t / "scripts/kernel-doc").is_file():
                dest = tmp_path_factory.mktemp("kernel-doc") / "kernel-doc"
                shutil.copy2(t / "scripts/kernel-doc", dest)
                return dest
    pytest.fail("no prepared Debian kernel tree with scripts/kernel-doc; run: ktest tree prepare")


def test_kernel_doc_reads_each_commit(fake_kernel, ktest_home, kernel_doc_script):
    (fake_kernel / "scripts").mkdir()
    shutil.copy2(kernel_doc_script, fake_kernel / "scripts/kernel-doc")
    f = fake_kernel / "drivers/virtio/doc.c"
    f.write_text("/**\n * foo() - does foo\n * @a: the a\n */\nint foo(int a)\n{\n\treturn a;\n}\n")
    git(fake_kernel, "add", "-A")
    git(fake_kernel, "commit", "-q", "-m", "doc")
    before = git(fake_kernel, "rev-parse", "HEAD").strip()
    f.write_text(f.read_text().replace("int foo(int a)", "int foo(int a, int b)"))
    git(fake_kernel, "commit", "-q", "-am", "doc: b")
    t = tree.prepare_user(fake_kernel)
    new = added(static.kernel_doc(t, before, ["drivers/virtio/doc.c"]),
                static.kernel_doc(t, "HEAD", ["drivers/virtio/doc.c"]))
    # 6.12's kernel-doc says "or struct member", 6.1's "or member".
    assert len(new) == 1 and re.fullmatch(r"drivers/virtio/doc\.c:6: warning: Function parameter or "
                                          r"(struct )?member 'b' not described in 'foo'", str(new[0])), new
    assert static.kernel_doc(t, "HEAD", ["drivers/virtio/virtio_ring.c"]) == []      # no /** in it


def test_cc_covers_get_maintainer(mail_tree, tmp_path):
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "v1"))
    msgs = static.mail_messages(mail_tree, None)        # found through the recorded version
    assert len(msgs) == 2
    one = git(mail_tree.path, "rev-list", "--reverse", f"{mail_tree.base}..{mail_tree.branch}").split()[0]
    from ktest.fullcheck import _patch_id

    v = static.recipients_cover(mail_tree, one, msgs[_patch_id(mail_tree, one)])
    assert v.result == "pass", v.message
    # A hand-edited mail that drops the list fails, naming it.
    edited = tmp_path / "edited"
    edited.mkdir()
    for m in ms.patches:
        text = m.path.read_text().replace("virtualization@lists.linux-foundation.org", "someone@example.org")
        (edited / m.path.name).write_text(text)
    msgs = static.mail_messages(mail_tree, edited)
    v = static.recipients_cover(mail_tree, one, msgs[_patch_id(mail_tree, one)])
    assert v.result == "fail" and "virtualization@lists.linux-foundation.org" in v.message
    assert static.recipients_cover(mail_tree, one, None).result == "skip"


def test_objects_a_patch_touches(fake_kernel, ktest_home):
    from ktest.fullcheck import objects

    k = fake_kernel
    (k / "drivers/vhost").mkdir(parents=True)
    (k / "include/linux").mkdir(parents=True)
    (k / "include/uapi/linux").mkdir(parents=True)
    (k / "tools/virtio").mkdir(parents=True)
    (k / "drivers/vhost/Makefile").write_text(
        "obj-$(CONFIG_VHOST_NET) += vhost_net.o\nvhost_net-y := net.o\n"
        "obj-$(CONFIG_VHOST_SCSI) += vhost_scsi.o\nvhost_scsi-y := scsi.o\nobj-$(CONFIG_VHOST) += vhost.o\n")
    (k / "drivers/vhost/vhost.h").write_text("#include <linux/vhost.h>\n")
    (k / "drivers/vhost/net.c").write_text('#include "vhost.h"\n')
    (k / "drivers/vhost/scsi.c").write_text('#include "vhost.h"\n')
    (k / "drivers/vhost/vhost.c").write_text('  #  include "vhost.h"\n')
    (k / "drivers/vhost/test.c").write_text('#include "vhost.h"\n')
    (k / "include/linux/vhost.h").write_text("#include <uapi/linux/vhost.h>\n")
    (k / "include/uapi/linux/vhost.h").write_text("/* uapi */\n")
    (k / "drivers/virtio/Makefile").write_text("obj-y += virtio_ring.o\n")
    (k / "tools/virtio/user.c").write_text("#include <linux/vhost.h>\n")
    # Mentions the name without including it.
    (k / "drivers/virtio/other.c").write_text("/* see linux/vhost.h */\n")
    git(k, "add", "-A")
    git(k, "commit", "-q", "-m", "vhost")
    t = tree.prepare_user(k)
    cfg = {"CONFIG_VHOST_NET": "m", "CONFIG_VHOST": "m"}
    assert objects.include_spellings("include/uapi/linux/vhost.h") == [("linux/vhost.h", None),
                                                                       ("uapi/linux/vhost.h", None)]
    assert objects.include_spellings("drivers/vhost/vhost.h") == [("vhost.h", "drivers/vhost")]
    assert objects.header_users(t, "include/uapi/linux/vhost.h") == [
        "drivers/vhost/net.c", "drivers/vhost/scsi.c", "drivers/vhost/test.c", "drivers/vhost/vhost.c"]
    assert objects.built(t, "HEAD", cfg, "drivers/vhost/net.c")
    assert not objects.built(t, "HEAD", cfg, "drivers/vhost/scsi.c")     # CONFIG_VHOST_SCSI unset
    assert not objects.built(t, "HEAD", cfg, "drivers/vhost/test.c")     # no rule at all
    assert objects.built(t, "HEAD", cfg, "drivers/virtio/virtio_ring.c")
    objs, notes = objects.objects(t, "HEAD", ["include/uapi/linux/vhost.h", "drivers/vhost/test.c",
                                              "tools/virtio/user.c"], cfg)
    assert objs == ["drivers/vhost/net.o", "drivers/vhost/test.o", "drivers/vhost/vhost.o"]
    assert notes == ["drivers/vhost/test.c: not built by the check config's Makefiles; compiled on its own"]


def test_a_branch_applied_from_other_patches_is_refused(fake_kernel, fake_series, ktest_home):
    """check --full reads the branch: one applied from an older patches/ would be
    checked under the new patches' names (seen: 21 patches checked, 20 commits built)."""
    from ktest.fullcheck import _branch_differs

    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    log = git(t.path, "log", "--reverse", "--format=%H %s", f"{t.base}..{t.branch}")
    commits = [tuple(ln.split(" ", 1)) for ln in log.splitlines()]
    assert _branch_differs(t, commits, fake_series) == ""
    # A third patch in patches/ that the branch does not have.
    make_patch(fake_series / "0003-virtio_ring-third.patch", subject="virtio_ring: third change",
               old="static int line30 = 30;", new="static int line30 = 300;", start=30)
    with open(fake_series / "series", "a") as f:
        f.write("0003-virtio_ring-third.patch\n")
    assert _branch_differs(t, commits, fake_series) == "2 commits on the branch, 3 patches in the series"
    # The same subjects, other changes.
    (fake_series / "series").write_text("0001-virtio_ring-first.patch\n0002-virtio_ring-second.patch\n")
    make_patch(fake_series / "0002-virtio_ring-second.patch", subject="virtio_ring: second change",
               old="static int line20 = 20;", new="static int line20 = 201;", start=20)
    why = _branch_differs(t, commits, fake_series)
    assert why.endswith("does not make the changes of 0002-virtio_ring-second.patch"), why
