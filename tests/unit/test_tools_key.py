"""Which edits make ktest build tools/virtio again: the key of a build names its inputs."""
from ktest import guestprogs, tree
from tests.conftest import git


def test_an_edit_to_virtio_ring_c_keeps_the_ringtest_build(fake_kernel, ktest_home):
    (fake_kernel / "tools" / "virtio" / "ringtest").mkdir(parents=True)
    (fake_kernel / "tools" / "virtio" / "ringtest" / "main.h").write_text("/* ring */\n")
    (fake_kernel / "include" / "linux").mkdir(parents=True)
    (fake_kernel / "include" / "linux" / "ptr_ring.h").write_text("/* ptr_ring */\n")
    (fake_kernel / "tools" / "include").mkdir(parents=True)
    (fake_kernel / "tools" / "include" / "x.h").write_text("\n")
    (fake_kernel / "drivers" / "vhost").mkdir(parents=True)
    (fake_kernel / "drivers" / "vhost" / "vringh.c").write_text("\n")
    git(fake_kernel, "add", "-A")
    git(fake_kernel, "commit", "-q", "-m", "tools")
    t = tree.prepare_user(fake_kernel)

    def keys():
        return (guestprogs._id(t, None, guestprogs.RINGTEST_SOURCES), guestprogs._id(t, None, guestprogs.TOOLS_SOURCES))

    ring0, all0 = keys()
    with open(t.path / "drivers" / "virtio" / "virtio_ring.c", "a") as f:
        f.write("/* edited */\n")
    ring1, all1 = keys()
    assert ring1 == ring0 and all1 != all0
    # What ringtest does compile, it rebuilds for.
    with open(t.path / "include" / "linux" / "ptr_ring.h", "a") as f:
        f.write("/* edited */\n")
    assert keys()[0] != ring0
