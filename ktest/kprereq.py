"""What a kernel build needs from the host that the .config decides: the
tools every build runs, and the headers some options pull in (objtool's
libelf, module signing's OpenSSL), named by their Debian package."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from .errors import BuildError


@dataclass
class Prerequisite:
    what: str
    package: str
    why: str


def missing_tools(config: dict[str, str], *, which=shutil.which, exists=os.path.exists) -> list[Prerequisite]:
    """What the build of this .config needs that the host lacks, by Debian package."""
    need = [("gcc", "gcc", "the compiler"), ("make", "make", "the build"), ("flex", "flex", "the Kconfig lexer"),
            ("bison", "bison", "the Kconfig parser"), ("bc", "bc", "kernel/time/timeconst.h"),
            ("perl", "perl", "generated headers")]
    out = [Prerequisite(t, p, w) for t, p, w in need if which(t) is None]
    if config.get("CONFIG_OBJTOOL") == "y" and not exists("/usr/include/gelf.h"):
        out.append(Prerequisite("libelf headers (gelf.h)", "libelf-dev", "objtool (CONFIG_OBJTOOL=y)"))
    if (config.get("CONFIG_MODULE_SIG_FORMAT") == "y" or config.get("CONFIG_SYSTEM_TRUSTED_KEYRING") == "y") \
            and not exists("/usr/include/openssl/opensslv.h"):
        out.append(Prerequisite("OpenSSL headers", "libssl-dev", "scripts/sign-file and certs/extract-cert"))
    if config.get("CONFIG_KERNEL_XZ") == "y" and which("xz") is None:
        out.append(Prerequisite("xz", "xz-utils", "the compressed kernel (CONFIG_KERNEL_XZ=y)"))
    return out


def check_prerequisites(config: dict[str, str]) -> None:
    missing = missing_tools(config)
    if missing:
        pkgs = " ".join(dict.fromkeys(m.package for m in missing))
        raise BuildError("the kernel build needs " + "; ".join(f"{m.what} for {m.why} (Debian package {m.package})"
                                                                for m in missing),
                         hint=f"Install them with: apt-get install {pkgs}")
