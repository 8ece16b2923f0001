from ktest.qemu.console import Console
from tests.conftest import FIXTURES


def _feed(lines):
    nonce = next(ln.split("KTEST-BOOTED-")[1] for ln in lines if "KTEST-BOOTED-" in ln)
    c = Console(nonce)
    for ln in lines:
        c.feed(ln)
    return c


def test_recorded_sysrq_panic():
    """Console of a real boot whose command was `echo c > /proc/sysrq-trigger`."""
    lines = (FIXTURES / "console-panic-sysrq.log").read_text().splitlines()[1:]
    c = _feed(lines)
    assert c.booted and c.started and c.exit_status is None
    assert c.panicked()
    (f,) = c.findings
    assert f.line == "Kernel panic - not syncing: sysrq triggered crash"
    assert "sysrq_handle_crash+0x16/0x20" in "\n".join(f.trace)
    assert "virtio_ring" in c.loaded and c.taint["virtio_ring"] == "OE"


def test_markers_need_the_nonce():
    c = Console("abc")
    for ln in ["KTEST-BOOTED-abc", "KTEST-START-abc", "KTEST-EXIT-xyz: 0", "hello",
               "KTEST-EXIT-abc: 7"]:
        c.feed(ln)
    assert c.exit_status == 7
    assert c.output == ["KTEST-EXIT-xyz: 0", "hello"]


def test_warning_with_trace_then_normal_output():
    c = Console("n")
    c.feed("KTEST-START-n")
    c.feed("[    3.1] ------------[ cut here ]------------")
    c.feed("[    3.1] WARNING: CPU: 0 PID: 1 at drivers/virtio/virtio_ring.c:2 vring_foo+0x1/0x2 [virtio_ring]")
    c.feed("[    3.1] Call Trace:")
    c.feed("[    3.1] ---[ end trace 0000000000000000 ]---")
    c.feed("after")
    assert [f.kind for f in c.findings] == ["warn"]
    assert c.findings[0].trace[-1].startswith("---[ end trace")
    assert "after" in c.output


def test_warn_message_before_the_warning_line_is_kept():
    c = Console("n")
    for ln in ["[ 2.1] ------------[ cut here ]------------",
               "[ 2.1] ktest_warn: deliberate warning",
               "[ 2.1] WARNING: CPU: 1 PID: 95 at ktest_warn.c:8 ktest_warn_init+0x11/0x1000 [ktest_warn]",
               "[ 2.1] ---[ end trace 0000000000000000 ]---"]:
        c.feed(ln)
    (f,) = c.findings
    assert f.render().splitlines()[0] == "ktest_warn: deliberate warning"


def test_recorded_lockdep_lock_order_report():
    """A real debug-kernel boot (vdpa_sim's iommu_lock under the TX lock): every lockdep headline counts."""
    lines = (FIXTURES / "console-lockdep-softirq.log").read_text().splitlines()[1:]
    c = _feed(lines)
    kinds = [f.kind for f in c.findings]
    assert "lockdep" in kinds, kinds
    f = next(f for f in c.findings if f.kind == "lockdep")
    assert "SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected" in f.line
    assert "vdpasim_map_range" in f.render()
