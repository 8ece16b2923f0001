"""series rebase --build on the tiny fake tree: real git, real rebase; the compiler is a
fake (the out-of-tree module build needs kernel headers: tests/integration/test_rebase_build.py
runs the real one on 6.12).  The fake compiles the fake virtio_ring.c as C would: every
`static int NAME = VALUE;` may only name a variable declared above it."""
import re

import pytest

from ktest import build, buildeach, kmod, rebase
from ktest.artifacts import BuildResult, summarise_failure
from ktest.cli import main
from ktest.errors import BuildError, SeriesError
from tests.conftest import git
from tests.unit.conftest import make_patch
from tests.unit.test_lifecycle import applied  # noqa: F401 (fixture)

RING = "drivers/virtio/virtio_ring.c"


@pytest.fixture
def compiler(monkeypatch, tmp_path):
    """Fake build_kmod: (the tree's base, HEAD's subject, the release) of every build, in order."""
    builds = []
    log = tmp_path / "kmod" / "build.log"
    log.parent.mkdir()

    def build_kmod(t, release=None, **kw):
        builds.append((t.base, git(t.path, "log", "-1", "--format=%s").strip(), release))
        declared, errors = set(), []
        for i, line in enumerate((t.path / RING).read_text().splitlines(), 1):
            m = re.fullmatch(r"static int (\w+) = (\w+);", line)
            if m and not m.group(2).isdigit() and m.group(2) not in declared:
                errors.append(f"{t.path}/{RING}:{i}:{line.index(m.group(2)) + 1}: error: "
                              f"'{m.group(2)}' undeclared here (not in a function)")
            if m:
                declared.add(m.group(1))
        log.write_text("".join(f"{e}\n" for e in errors) or "  LD [M]  virtio_ring.ko\n")
        if errors:
            raise summarise_failure(log, "module build", (log.parent, f"{t.path}/"))
        return BuildResult("kmod", log.parent, [], log, [], None, 1.0, release)

    monkeypatch.setattr(build, "build_kmod", build_kmod)
    monkeypatch.setattr(build, "build_tools", lambda *a, **k: pytest.fail("no patch touches tools/virtio"))
    monkeypatch.setattr(rebase, "module_release", lambda t, version: f"{version}-test")
    return builds


@pytest.fixture
def renamed(applied, fake_kernel, fake_series):  # noqa: F811
    """Patch 2 reads line5; the new base renames it to renamed5 and changes nothing the
    patches touch: both apply as written, and patch 2 no longer compiles."""
    make_patch(fake_series / "0002-virtio_ring-second.patch", subject="virtio_ring: second change",
               old="static int line20 = 20;", new="static int line20 = line5;", start=20,
               author="Bob Hacker <bob@example.org>", date="Wed, 4 Feb 2015 11:30:00 +0000",
               body="Second why.\n\nSigned-off-by: Bob Hacker <bob@example.org>")
    from ktest import series

    series.apply(applied, series.load(fake_series), force=True)
    f = fake_kernel / RING
    f.write_text(f.read_text().replace("line5 = 5;", "renamed5 = 5;"))
    git(fake_kernel, "commit", "-q", "-am", "upstream renames line5")
    return applied


def test_without_build_the_patch_that_no_longer_compiles_is_taken(renamed, compiler):
    tip = rebase.start(renamed, "master")
    assert "line20 = line5;" in git(renamed.path, "show", f"{tip}:{RING}")
    assert compiler == []


def test_build_stops_at_the_patch_that_does_not_compile(renamed, compiler, capsys):
    t = renamed
    old_tip = git(t.path, "rev-parse", t.branch).strip()
    master = git(t.path, "rev-parse", "master").strip()
    assert main(["series", "rebase", "--onto", "master", "--build"]) == 1
    err = capsys.readouterr().err
    assert "rebase stopped at patch 2/2 'virtio_ring: second change': it does not build: module build " \
           f"failed: {t.path}/{RING}:20: error: 'line5' undeclared" in " ".join(err.split()), err
    assert "git add the files, and run: ktest series rebase --continue" in " ".join(err.split())
    assert "build.log" in err
    # Patch 1 was built, then patch 2, both on the new base, against its release.
    assert compiler == [(master, "virtio_ring: first change", "6.1.192-test"),
                        (master, "virtio_ring: second change", "6.1.192-test")]
    # Nothing lost: the series is as it was; patch 2 stays committed on the rebase branch.
    assert git(t.path, "rev-parse", t.branch).strip() == old_tip
    assert git(t.path, "branch", "--show-current").strip() == rebase.rebase_branch(t)
    assert git(t.path, "log", "-1", "--format=%s").strip() == "virtio_ring: second change"
    assert git(t.path, "status", "--porcelain") == ""
    # --continue without a fix builds it again, and stops again.
    with pytest.raises(SeriesError, match="patch 2/2 .* does not build: .*'line5' undeclared"):
        rebase.proceed(t)
    assert len(compiler) == 3
    # Fix, leave it unstaged: refused, by file.
    g = t.path / RING
    g.write_text(g.read_text().replace("line20 = line5;", "line20 = renamed5;"))
    with pytest.raises(SeriesError, match=f"patch 2: changes not staged in {RING}"):
        rebase.proceed(t)
    git(t.path, "add", RING)
    new_tip = rebase.proceed(t)
    assert len(compiler) == 4
    assert git(t.path, "rev-parse", t.branch).strip() == new_tip
    assert "line20 = renamed5;" in git(t.path, "show", f"{new_tip}:{RING}")
    # The amended commit is still the patch: its author, date and message.
    assert git(t.path, "log", "-1", "--format=%an|%ad|%s%n%b", "--date=iso", new_tip).strip() == \
        "Bob Hacker|2015-02-04 11:30:00 +0000|virtio_ring: second change\nSecond why.\n\n" \
        "Signed-off-by: Bob Hacker <bob@example.org>"
    assert git(t.path, "rev-list", "--count", f"master..{new_tip}").strip() == "2"
    err = capsys.readouterr().err
    assert "patch 2: build fixed by hand" in err
    assert "patch 2 was merged or resolved, not applied as written: each built once committed (--build)" in err


def test_build_is_remembered_and_an_amend_by_hand_is_checked(renamed, compiler):
    t = renamed
    with pytest.raises(SeriesError, match="patch 2/2"):
        rebase.start(t, "master", build=True)
    g = t.path / RING
    g.write_text(g.read_text().replace("line20 = line5;", "line20 = line6;"))
    git(t.path, "commit", "-q", "--amend", "--no-edit", "-a")
    tip = rebase.proceed(t)         # no build=True: the rebase remembers it
    assert len(compiler) == 3 and compiler[-1][1] == "virtio_ring: second change"
    assert "line20 = line6;" in git(t.path, "show", f"{tip}:{RING}")


def test_abort_after_a_build_stop_restores(renamed, compiler):
    t = renamed
    old_tip = git(t.path, "rev-parse", t.branch).strip()
    with pytest.raises(SeriesError, match="does not build"):
        rebase.start(t, "master", build=True)
    rebase.abort(t)
    assert git(t.path, "branch", "--show-current").strip() == t.branch
    assert git(t.path, "rev-parse", "HEAD").strip() == old_tip
    assert rebase.rebase_branch(t) not in git(t.path, "branch")
    assert t.state("--get-regexp", r"^ktest\.rebase\.", check=False).stdout == ""


def test_a_resolved_conflict_is_built_before_going_on(applied, fake_kernel, compiler):  # noqa: F811
    f = fake_kernel / RING
    f.write_text(f.read_text().replace("line20 = 20;", "line20 = 21;"))
    git(fake_kernel, "commit", "-q", "-am", "upstream change")
    with pytest.raises(SeriesError, match="merged three ways with conflicts"):
        rebase.start(applied, "master", build=True)
    assert len(compiler) == 1                   # patch 1, before the conflict
    g = applied.path / RING
    text = g.read_text()
    start, end = text.index("<<<<<<<"), text.index(">>>>>>>")
    g.write_text(text[:start] + "static int line20 = nowhere;\n" + text[text.index("\n", end) + 1:])
    git(applied.path, "add", RING)
    with pytest.raises(SeriesError, match=rf"patch 2/2 .*{RING}:20: error: 'nowhere' undeclared"):
        rebase.proceed(applied)
    assert git(applied.path, "log", "-1", "--format=%s").strip() == "virtio_ring: second change"
    g.write_text(g.read_text().replace("nowhere", "line19"))
    git(applied.path, "add", RING)
    tip = rebase.proceed(applied)
    assert "line20 = line19;" in git(applied.path, "show", f"{tip}:{RING}")
    assert [b[1] for b in compiler] == ["virtio_ring: first change"] + ["virtio_ring: second change"] * 2


def test_build_on_continue_of_a_rebase_started_without_it_is_refused(applied, fake_kernel, compiler):  # noqa: F811
    f = fake_kernel / RING
    f.write_text(f.read_text().replace("line20 = 20;", "line20 = 21;"))
    git(fake_kernel, "commit", "-q", "-am", "upstream change")
    with pytest.raises(SeriesError, match="rebase stopped at patch 2/2"):
        rebase.start(applied, "master")
    with pytest.raises(SeriesError, match="--build goes with --onto: this rebase was started without it"):
        rebase.proceed(applied, build=True)


def test_no_kernel_to_build_against_refuses_before_the_first_patch(applied, fake_kernel, monkeypatch):  # noqa: F811
    old_tip = git(applied.path, "rev-parse", applied.branch).strip()

    def none(t, version):
        raise BuildError(f"no kernel to build the series' modules against for Linux {version}")

    monkeypatch.setattr(rebase, "module_release", none)
    with pytest.raises(BuildError, match="for Linux 6.1.192"):
        rebase.start(applied, "master", build=True)
    assert git(applied.path, "branch", "--show-current").strip() == applied.branch
    assert git(applied.path, "rev-parse", "HEAD").strip() == old_tip
    rebase.start(applied, "master")             # no rebase was left half started


def test_build_commit_builds_the_tools_for_a_commit_that_touches_them(applied, monkeypatch):  # noqa: F811
    t = applied
    done = []
    monkeypatch.setattr(build, "build_kmod", lambda t, release: done.append("kmod") or
                        BuildResult("kmod", t.path, [], t.path / "log", ["w: kmod"], None, 1.0, release))
    monkeypatch.setattr(build, "build_tools", lambda t: done.append("tools") or
                        BuildResult("tools", t.path, [], t.path / "log", [], None, 2.0))
    head = git(t.path, "rev-parse", "HEAD").strip()
    pb, warnings = buildeach.build_commit(t, head, "s", "r")
    assert (pb.result, done, warnings) == ("built", ["kmod"], ["w: kmod"])
    (t.path / "tools/virtio").mkdir(parents=True)
    (t.path / "tools/virtio/x.c").write_text("int x;\n")
    git(t.path, "add", "-A")
    git(t.path, "commit", "-q", "-m", "tools")
    pb, _ = buildeach.build_commit(t, git(t.path, "rev-parse", "HEAD").strip(), "tools", "r")
    assert (pb.result, done, pb.seconds) == ("built", ["kmod", "kmod", "tools"], 3.0)


def test_module_release_follows_the_version(monkeypatch, applied):  # noqa: F811
    """Only the decision: which kernel the modules build against (test_guest_kernel
    covers the kernels themselves)."""
    from ktest import kbuild, kernels
    from ktest.qemu import guest

    monkeypatch.setattr(kmod, "module_list", lambda t: kmod.ModuleList("obj-m += virtio_ring.o\n", [], "kmod/"))
    monkeypatch.setattr(kernels, "debian_release", lambda v: {"6.1": "6.1.0-57-amd64",
                                                              "6.12": "6.12.118+deb12-amd64"}[v[:4].rstrip(".")])
    monkeypatch.setattr(guest, "builtin_conflicts", lambda rel, mods: sorted({"virtio_ring"} & set(mods))
                        if rel.startswith("6.12") else [])
    monkeypatch.setattr(kbuild, "find_release", lambda v, frags=None: None)
    assert buildeach.module_release(applied, "6.1.192") == "6.1.0-57-amd64"
    with pytest.raises(BuildError, match="Debian's kernel 6.12.118[+]deb12-amd64 has virtio_ring built in, "
                                         "and ktest has built no 6.12.118 kernel") as e:
        buildeach.module_release(applied, "6.12.118")
    assert "ktest build --kernel" in e.value.hint

    class Own:
        release = "6.12.118"

    monkeypatch.setattr(kbuild, "find_release", lambda v, frags=None: Own if v == "6.12.118" else None)
    assert buildeach.module_release(applied, "6.12.118") == "6.12.118"
