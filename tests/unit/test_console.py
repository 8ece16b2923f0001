import pytest

from ktest.qemu.console import Console, ProgramOutput
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
    for ln in ["KTEST-BOOTED-abc", "KTEST-EXIT-xyz: 0", "KTEST-MODULE-FAILED-abc virtio_net",
               "KTEST-EXIT-abc: 125"]:
        c.feed(ln)
    assert c.booted and c.failed_module == "virtio_net" and c.exit_status == 125


def _program(data: bytes, nonce: str = "n1") -> ProgramOutput:
    """Feed the program channel as init writes it: the program's bytes, then
    the newline and marker init appends, split into lines as run.Stream does."""
    stream = data + f"\nKTEST-EXIT-{nonce}: 3\n".encode()
    p = ProgramOutput(nonce)
    echoed = []
    for line in stream.decode().split("\n")[:-1]:
        echoed += p.feed(line)
    echoed += p.finish()
    assert echoed == p.output
    return p


@pytest.mark.parametrize("data,lines", [
    (b"hello", ["hello"]),                          # printf hello: no trailing newline
    (b"hello\n", ["hello"]),
    (b"", []),
    (b"\n", [""]),
    (b"a\n\nb", ["a", "", "b"]),
    (b"a\n\n", ["a", ""]),
    (b"KTEST-EXIT-n1: 0", ["KTEST-EXIT-n1: 0"]),      # the marker counts only after init's newline
    (b"KTEST-EXIT-other: 0\nx\n", ["KTEST-EXIT-other: 0", "x"]),
])
def test_exit_status_whatever_the_program_prints(data, lines):
    p = _program(data)
    assert p.exit_status == 3 and p.output == lines


def test_program_channel_without_marker_keeps_the_last_line():
    p = ProgramOutput("n")
    assert p.feed("one") == [] and p.feed("two") == ["one"]
    assert p.finish() == ["two"] and p.exit_status is None and p.output == ["one", "two"]


def test_report_like_program_output_on_the_console_is_no_report():
    """No port in the guest: the program shares the console, its lines carry no printk time."""
    c = Console("n")
    for ln in ["[    0.5] Linux version 6.1.0", "KTEST-NOPORT-n", "KTEST-START-n",
               "DEBUG: ring size 256", "BUG: not the kernel's", "Kernel panic - not syncing: a joke",
               "[    2.0] x: WARNING: CPU: 0 PID: 1 quoted mid-line", "hello", "KTEST-EXIT-n: 0"]:
        c.feed(ln)
    assert c.findings == []
    assert c.program.exit_status == 0 and c.done
    assert c.program.output == ["DEBUG: ring size 256", "BUG: not the kernel's",
                                "Kernel panic - not syncing: a joke", "hello"]


def test_warning_with_trace_then_normal_output():
    c = Console("n")
    c.feed("KTEST-START-n")
    c.feed("[    3.1] ------------[ cut here ]------------")
    c.feed("[    3.1] WARNING: CPU: 0 PID: 1 at drivers/virtio/virtio_ring.c:2 vring_foo+0x1/0x2 [virtio_ring]")
    c.feed("[    3.1] Call Trace:")
    c.feed("[    3.1] ---[ end trace 0000000000000000 ]---")
    c.feed("[    3.2] after")
    assert [f.kind for f in c.findings] == ["warn"]
    assert c.findings[0].trace[-1].startswith("---[ end trace")
    assert "after" not in c.findings[0].render()


def test_an_open_report_swallows_no_marker_and_no_other_line():
    """A panic has no end line before the guest stops: init's markers and
    the program's lines after its headline stay what they are."""
    c = Console("n")
    c.program = ProgramOutput("n")       # the no-port fallback, the harder case
    for ln in ["KTEST-START-n", "[    3.0] Kernel panic - not syncing: something",
               "[    3.0] CPU: 0 PID: 1 Comm: sh", "program line", "[    3.0] Call Trace:", "",
               "KTEST-EXIT-n: 0"]:
        c.feed(ln)
    (f,) = c.findings
    assert f.trace == ["CPU: 0 PID: 1 Comm: sh", "Call Trace:"]
    assert c.program.output == ["program line"] and c.program.exit_status == 0


@pytest.mark.parametrize("line,kind", [
    ("[   12.345678] BUG: KASAN: slab-out-of-bounds in vring_map_one_sg+0x1/0x2 [virtio_ring]", "kasan"),
    ("[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008", "bug"),
    ("[    1.000000] BUG: unable to handle page fault for address: ffffffffc0000000", "oops"),
    ("[    1.000000] Oops: 0002 [#1] PREEMPT SMP NOPTI", "oops"),
    ("[    1.000000] general protection fault, probably for non-canonical address 0xdead: 0000 [#1]", "oops"),
    ("[    1.000000] kernel BUG at drivers/virtio/virtio_ring.c:560!", "bug"),
    ("[    1.000000] WARNING: CPU: 1 PID: 95 at drivers/virtio/virtio_ring.c:8 f+0x1/0x2", "warn"),
    ("[    1.000000] WARNING: possible circular locking dependency detected", "lockdep"),
    ("[    1.000000][    T1] BUG: sleeping function called from invalid context at mm/slab.h:1", "bug"),
    ("[    1.000000] Kernel panic - not syncing: Fatal exception", "panic"),
])
def test_kernel_report_headlines(line, kind):
    c = Console("n")
    c.feed(line)
    assert [f.kind for f in c.findings] == [kind]


@pytest.mark.parametrize("line", [
    "[    1.000000] virtio_net: DEBUG: BUG: ring size 256",
    "[    1.000000] sh: Kernel panic - not syncing is only a string here",
    "[    1.000000] foo: no WARNING: CPU: 0 PID: 1 here",
    "DEBUG: ring size 256",
])
def test_words_in_the_middle_of_a_line_are_no_report(line):
    c = Console("n")
    c.feed("[    0.1] Linux version 6.1.0")
    c.feed(line)
    assert c.findings == []


def test_recorded_kasan_report():
    """KASAN's report as Documentation/dev-tools/kasan.rst of the 6.1 tree shows it (Debian's
    kernel has no KASAN to record one), with printk times: kept whole, up to its closing rule."""
    lines = (FIXTURES / "console-kasan.log").read_text().splitlines()
    c = Console("n")
    for ln in lines:
        c.feed(ln)
    (f,) = c.findings
    assert f.kind == "kasan" and "slab-out-of-bounds in kmalloc_oob_right" in f.line
    assert f.trace[-1].startswith("=====") and "The buggy address belongs to" in f.render()
    assert "after the report" not in f.render()


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
