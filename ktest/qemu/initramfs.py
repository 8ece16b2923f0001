"""Build a busybox initramfs: static busybox, modules in load order, payload, generated init.

The archive is written by ktest itself in the kernel's ``newc`` format with
fixed owners and times, so the same contents give the same bytes, and it is
cached under the hash of those contents.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import BootError
from ..kernels import builtin_modules
from ..modinfo import modinfo
from ..run import run

BUSYBOX = Path("/bin/busybox")
BUSYBOX_PACKAGE = "busybox-static"
PROGRAM_PORT = "ktest.out"   # the virtio-serial port's name (boot.py gives it to QEMU)
# The modules that give the guest that port, when the kernel has them as modules.
CHANNEL_MODULES = ["virtio_pci", "virtio_console"]


@dataclass
class Module:
    name: str
    path: Path
    depends: list[str]
    patched: bool


@dataclass
class Initramfs:
    path: Path
    modules: list[Module]
    entries: list[str]          # paths inside the archive
    nonce: str


def stock_modules(release: str, root: Path | None = None) -> dict[str, Path]:
    """Module name -> file, from the installed kernel's modules.dep.

    ``root`` is another modules directory (a kernel build's modules_install).
    """
    base = root or Path(f"/lib/modules/{release}")
    dep = base / "modules.dep"
    found: dict[str, Path] = {}
    if dep.exists():
        for line in dep.read_text().splitlines():
            rel = line.split(":", 1)[0]
            name = Path(rel).name.split(".ko", 1)[0].replace("-", "_")
            found[name] = base / rel
    return found


def channel_modules(release: str, root: Path | None = None) -> list[str]:
    """The modules the program's channel needs, where this kernel has them
    as modules (built in, or absent: none; init then falls back to the console)."""
    stock = stock_modules(release, root)
    return [m for m in CHANNEL_MODULES if m in stock]


def resolve_modules(wanted: list[str], patched: dict[str, Path], release: str,
                    root: Path | None = None, optional: tuple[str, ...] | list[str] = (),
                    skipped: list[str] | None = None) -> list[Module]:
    """The wanted modules plus their dependencies, in load order.

    A patched module is used instead of the stock one of the same name; a
    module the kernel has built in (virtio_pci in Debian's 6.12) is already
    there.  Dependencies come from each module file's own ``depends`` field.
    A wanted name in ``optional`` that the kernel does not have (vhost_test,
    out of tree only, under --modules stock) is left out and added to
    ``skipped``; any other missing module is an error.
    """
    stock = stock_modules(release, root)
    builtin = builtin_modules(release, root)
    ordered: list[Module] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> None:
        name = name.replace("-", "_")
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise BootError(f"module dependency cycle: {' -> '.join(chain + [name])}")
        state[name] = "visiting"
        if name in patched:
            path, is_patched = patched[name], True
        elif name in stock:
            path, is_patched = stock[name], False
        elif name in builtin:
            state[name] = "done"
            return
        elif not chain and name in optional:
            state[name] = "done"
            if skipped is not None:
                skipped.append(name)
            return
        else:
            need = f" (needed by {chain[-1]})" if chain else ""
            raise BootError(f"module {name}{need} not found among the built modules "
                            f"or in {root or f'/lib/modules/{release}'}")
        deps = [d for d in modinfo(path, "depends").split(",") if d]
        for d in deps:
            visit(d, chain + [name])
        state[name] = "done"
        ordered.append(Module(name, path, deps, is_patched))

    for w in wanted:
        visit(w, [])
    return ordered


def check_vermagic(modules: list[Module], release: str) -> None:
    for m in modules:
        magic = modinfo(m.path, "vermagic").split(" ", 1)[0]
        if magic != release:
            raise BootError(f"module {m.name} ({m.path}) was built for kernel {magic}, "
                            f"but the guest kernel is {release}")


INIT_TEMPLATE = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/ktest/bin:/usr/sbin:/usr/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# What udev would make: without them "> /dev/stderr" writes a regular file.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
ip link set lo up 2>/dev/null
echo "KTEST-BOOTED-{nonce}"
while read -r name file; do
    if ! insmod "/ktest/modules/$file"; then
        echo "KTEST-MODULE-FAILED-{nonce} $name"
        dmesg | tail -n 5
        echo "KTEST-EXIT-{nonce}: 125"
        poweroff -f
    fi
    # The module's taint flags: O (out of tree) and E (unsigned) mark ours.
    echo "KTEST-MODULE-LOADED-{nonce} $name taint=$(cat /sys/module/$name/taint 2>/dev/null)"
done < /ktest/modules.order
cd /ktest
{net}
if [ -s /ktest/argv0 ] && ! command -v "$(cat /ktest/argv0)" >/dev/null 2>&1; then
    echo "KTEST-NOTFOUND-{nonce} $(cat /ktest/argv0)"
    echo "KTEST-EXIT-{nonce}: 127"
    poweroff -f
fi
# The program's channel: the virtio-serial port QEMU names {port}.  The
# program writes into a pipe that cat relays to the port, so it never opens
# the port itself (it can be open only once: /dev/stderr would fail).
# The port shows up shortly after virtio_console binds; without the driver
# (no class directory) there is nothing to wait for.
port=
i=0
while [ $i -lt 50 ] && [ -d /sys/class/virtio-ports ]; do
    for d in /sys/class/virtio-ports/*; do
        [ "$(cat "$d/name" 2>/dev/null)" = {port} ] && port=/dev/${{d##*/}}
    done
    [ -n "$port" ] && [ -c "$port" ] && break
    port=
    i=$((i + 1))
    sleep 0.1
done
if [ -n "$port" ]; then
    exec 3>"$port"
else
    echo "KTEST-NOPORT-{nonce}"
    exec 3>/dev/console
fi
mkfifo /tmp/.ktest-out
cat /tmp/.ktest-out >&3 &
relay=$!
echo "KTEST-START-{nonce}"
sh /ktest/cmd >/tmp/.ktest-out 2>&1 3>&-
status=$?
# The program is over: what it left running goes, so that the relay sees
# the end of its output (kernel threads ignore the signal).
for d in /proc/[0-9]*; do
    p=${{d#/proc/}}
    [ "$p" = 1 ] || [ "$p" = "$relay" ] || kill -KILL "$p" 2>/dev/null
done
wait $relay
# The newline ends a last line the program left open; the host drops it otherwise.
printf '\nKTEST-EXIT-{nonce}: %s\n' "$status" >&3
poweroff -f
"""

# QEMU user networking with these addresses spelled out on its command line
# (they are its defaults), so the guest configures them statically: a DHCP
# exchange costs ~0.3 s of every boot under TCG and can only give the same
# answer.  udhcpc and its script stay in the image for a person who wants it.
GUEST_ADDR, GUEST_NET, GUEST_GATEWAY, GUEST_DNS = "10.0.2.15", "10.0.2.0/24", "10.0.2.2", "10.0.2.3"

# eth0 can only come from virtio_net: without the driver (--modules none on a
# kernel that has it as a module) there is nothing to wait 2 s for.
NET_SETUP = f"""[ -d /sys/bus/virtio/drivers/virtio_net ] &&
    for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth0 ] && break; sleep 0.2; done
if [ ! -e /sys/class/net/eth0 ]; then echo "ktest: no eth0 (is virtio_net loaded?)"
else ip addr add {GUEST_ADDR}/24 dev eth0 && ip link set eth0 up && ip route add default via {GUEST_GATEWAY} \\
    && echo "nameserver {GUEST_DNS}" > /etc/resolv.conf || echo "ktest: could not configure eth0"
fi
"""

UDHCPC_SCRIPT = """#!/bin/sh
# Applies a busybox udhcpc lease: address, route, resolver.
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
deconfig)
    ip addr flush dev "$interface"
    ;;
esac
exit 0
"""


def host_program(name: str) -> dict[str, Path]:
    """A host program and the shared libraries it loads, at their own paths.

    For tools busybox lacks (iproute2's vdpa); the guest then runs the
    host's binary with the host's libraries.
    """
    import shutil

    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        raise BootError(f"host program '{name}' not found (for the guest)")
    files = {path: Path(path)}
    r = run(["ldd", path], timeout=30, check=False)
    for line in r.stdout.splitlines():
        # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        for word in line.split():
            if word.startswith("/"):
                files[word] = Path(word).resolve()
    return files


def _newc_entry(name: str, mode: int, data: bytes = b"", ino: int = 0) -> bytes:
    rdev = RDEV.get(name, (0, 0))
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    hdr = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
    out = hdr + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


RDEV = {"dev/console": (5, 1), "dev/null": (1, 3)}


def write_newc(entries: list[tuple[str, int, bytes]], dest: Path) -> None:
    """entries: (path without leading /, mode including file type, data)."""
    tmp = dest.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for ino, (name, mode, data) in enumerate(entries, 1):
            f.write(_newc_entry(name, mode, data, ino))
        trailer = _newc_entry("TRAILER!!!", 0)
        f.write(trailer)
    os.replace(tmp, dest)


def build(cmd: list[str] | str, modules: list[Module], payload: dict[str, Path] | None = None,
          *, net: bool = True, rootfs: dict[str, Path] | None = None) -> Initramfs:
    """Make (or reuse) the initramfs that loads ``modules`` and runs ``cmd``.

    ``cmd`` is an argument list (quoted for the guest shell) or a shell
    script text that ktest generated itself.  ``payload`` files go under
    /ktest, ``rootfs`` files at their own absolute paths (host programs
    and the libraries they need, see host_program()).
    """
    if not BUSYBOX.exists():
        raise BootError(f"{BUSYBOX} is missing", hint=f"Install it with: apt-get install {BUSYBOX_PACKAGE}")
    script = cmd if isinstance(cmd, str) else shlex.join(cmd) + "\n"
    D, F, X = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFREG | 0o755
    entries: list[tuple[str, int, bytes]] = []
    for d in ("bin", "dev", "proc", "sys", "tmp", "run", "etc", "etc/udhcpc", "ktest",
              "ktest/modules", "ktest/bin"):
        entries.append((d, D, b""))
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b""))
    entries.append(("bin/busybox", X, BUSYBOX.read_bytes()))
    entries.append(("etc/udhcpc/default.script", X, UDHCPC_SCRIPT.encode()))
    order = []
    for m in modules:
        fname = f"{m.name}.ko"
        entries.append((f"ktest/modules/{fname}", F, m.path.read_bytes()))
        order.append(f"{m.name} {fname}\n")
    entries.append(("ktest/modules.order", F, "".join(order).encode()))
    dirs = {e[0] for e in entries if e[1] == D}
    files = {f"ktest/{dest}": src for dest, src in (payload or {}).items()}
    files.update({dest.lstrip("/"): src for dest, src in (rootfs or {}).items()})
    for dest, src in sorted(files.items()):
        # The kernel's unpacker does not make missing parents: list them.
        parts = dest.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                entries.append((d, D, b""))
                dirs.add(d)
        mode = X if os.access(src, os.X_OK) else F
        entries.append((dest, mode, Path(src).read_bytes()))
    entries.append(("ktest/cmd", F, script.encode()))
    # For an argument list the guest checks that the program exists, so
    # "not found" is reported as such rather than as exit status 127.
    entries.append(("ktest/argv0", F, b"" if isinstance(cmd, str) else cmd[0].encode()))

    h = hashlib.sha256()
    for name, mode, data in entries:
        h.update(f"{name}\0{mode}\0{len(data)}\0".encode())
        h.update(data)
    # The markers carry a nonce taken from the contents, so that output of
    # the command cannot be mistaken for them, and equal inputs still give
    # an identical, cached archive.
    nonce = h.hexdigest()[:12]
    init = INIT_TEMPLATE.format(nonce=nonce, net=NET_SETUP if net else "", port=PROGRAM_PORT)
    entries.append(("init", X, init.encode()))
    h.update(init.encode())
    cache = paths.home() / "initramfs"
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"{h.hexdigest()[:24]}.cpio"
    if not dest.exists():
        write_newc(entries, dest)
    return Initramfs(dest, modules, [e[0] for e in entries], nonce)
