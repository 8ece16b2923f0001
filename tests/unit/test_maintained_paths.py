"""checkpatch's "does MAINTAINERS need updating?" answered from MAINTAINERS itself."""
from pathlib import Path

from ktest import check, maintainers
from ktest.tree import Tree

MAINTAINERS = """\
Descriptions of section entries and preferred order
	F: *Files* and directories wildcard patterns.

VIRTIO CORE AND NET DRIVERS
M:	Michael S. Tsirkin <mst@redhat.com>
F:	drivers/virtio/
F:	include/linux/virtio*.h
F:	tools/virtio/

VHOST
F:	drivers/vhost

THE REST
M:	Linus Torvalds <torvalds@linux-foundation.org>
F:	*
F:	*/
"""

DIFF = """\
diff --git a/{f} b/{f}
new file mode 100644
index 0000000..8a49abf
--- /dev/null
+++ b/{f}
@@ -0,0 +1 @@
+/* SPDX-License-Identifier: GPL-2.0 */
"""


def _tree(tmp_path: Path) -> Tree:
    (tmp_path / "MAINTAINERS").write_text(MAINTAINERS)
    (tmp_path / "drivers/vhost").mkdir(parents=True)
    return Tree(path=tmp_path, base="b", base_ref="v6.12.118-debian", version="6.12.118", kind="debian")


def test_sections_follow_get_maintainers_patterns(tmp_path):
    t = _tree(tmp_path)
    assert maintainers.sections_covering(t, "tools/virtio/linux/x.h") == ["VIRTIO CORE AND NET DRIVERS"]
    assert maintainers.sections_covering(t, "include/linux/virtio_ring.h") == ["VIRTIO CORE AND NET DRIVERS"]
    assert maintainers.sections_covering(t, "include/linux/sub/virtio.h") == []      # * stays in one directory
    assert maintainers.sections_covering(t, "drivers/vhost/net.c") == ["VHOST"]       # a plain directory path
    assert maintainers.sections_covering(t, "drivers/vhostx.c") == []
    assert maintainers.sections_covering(t, "README") == []                           # THE REST does not count


def test_the_warning_goes_only_where_every_new_file_is_covered(tmp_path):
    t = _tree(tmp_path)
    warn = check.Problem("0001-x.patch", "checkpatch WARNING", "added, moved or deleted file(s), does MAINTAINERS "
                         "need updating?", type="FILE_PATH_CHANGES")
    other = check.Problem("0001-x.patch", "checkpatch CHECK", "Alignment", type="PARENTHESIS_ALIGNMENT")
    covered = DIFF.format(f="tools/virtio/linux/compiler-context-analysis.h")
    assert check._maintained_paths(t, "0001-x.patch", covered, [warn, other]) == [other]
    loose = covered + DIFF.format(f="scripts/new_tool.sh")
    assert check._maintained_paths(t, "0001-x.patch", loose, [warn, other]) == [warn, other]
