"""The qemu device a local ``lava-run`` needs, written by ktest.

lava-server renders a device's configuration from its device-type template
(qemu.jinja2), the lab's device dictionary and the job's context; Debian's
lava-dispatcher ships no templates, so ktest writes the rendered result
itself, following the qemu template for an amd64 job: the same QEMU options
a lab's stock qemu device would give this job, so what runs here runs there.
"""
from __future__ import annotations

from pathlib import Path

from .common import dump

# The constants every LAVA device carries (base.jinja2's defaults).
CONSTANTS = {
    "posix": {"lava_test_sh_cmd": "/bin/sh", "lava_test_results_dir": "/lava-%s",
              "lava_test_shell_file": "~/.bashrc"},
    "shutdown-message": "The system is going down for reboot NOW",
    "kernel-start-message": "Linux version [0-9]",
    "default-shell-prompt": "lava-test: # ",
    "spawn_maxread": "4092",
    "failure_retry": 1,
    "boot_retry": 1,
}


def qemu_options(context: dict, accel: str) -> list[str]:
    """The qemu template's options for amd64 with this job context.

    ``accel`` kvm gives the template's ``-cpu host -enable-kvm``; tcg is the
    template with ``no_kvm`` set, plus ``-cpu max`` as ktest boots locally.
    """
    opts = ["-cpu host", "-enable-kvm"] if accel == "kvm" else ["-cpu max"]
    opts += [
        "-nographic",
        f"-net nic,{context.get('model', 'model=virtio')},macaddr=52:54:00:12:34:58 "
        f"-net {context.get('netdevice', 'user')}",
        f"-m {context.get('memory', 512)}",
        f"-monitor {context.get('monitor', 'none')}",
    ]
    return opts


def config(context: dict, accel: str = "tcg") -> dict:
    """The device configuration (what lava-run's --device reads), as a dict."""
    qemu = {
        "command": "qemu-system-x86_64",
        "boot_options": {"root": "/dev/sda1", "console": "ttyS0,115200", "boot_order": "c"},
        "options": qemu_options(context, accel),
    }
    if context.get("extra_options"):
        qemu["extra"] = list(context["extra_options"])
    return {
        "available_architectures": ["amd64", "x86_64"],
        "constants": CONSTANTS,
        "parameters": {"pass": None},
        "actions": {
            "deploy": {"connections": {"serial": None},
                       "methods": {"image": {"parameters": {"guest": {"size": 512, "interface": "ide",
                                                                    "driveid": "lavatest"}}}}},
            "boot": {"connections": {"serial": None}, "methods": {"qemu": {"parameters": qemu}}},
        },
        "timeouts": {"actions": {}, "connections": {}},
    }


def write(path: Path, context: dict, accel: str = "tcg") -> Path:
    return dump(config(context, accel), path)
