"""The set-up commands: doctor, init, tree."""
from __future__ import annotations

from pathlib import Path

from .. import job, tree, ui


def cmd_doctor(args) -> int:
    from rich.table import Table

    from .. import doctor

    rows = doctor.rows()
    table = Table(title="ktest doctor: what each stage needs on this machine")
    for col in ("", "what", "found", "Debian package", "needed for"):
        table.add_column(col, overflow="fold")
    for r in rows:
        mark = "ok" if r.found else ("MISSING" if r.required else "optional")
        table.add_row(mark, r.what, r.found or "-", r.package or "-", r.why)
    ui.out.print(table)
    bad = [r for r in rows if not r.ok]
    if bad:
        pkgs = " ".join(dict.fromkeys(p for r in bad for p in r.package.split()))
        ui.err.print(f"ktest doctor: {len(bad)} required item(s) missing; run scripts/setup-host"
                     + (f" (or: apt-get install {pkgs})" if pkgs else ""), markup=False)
        return 1
    return 0


def cmd_init(args) -> int:
    from .. import project

    p = project.init(args.dir)
    ui.out.print(f"series project in {p.root}: {p.series_file} and {p.patches_dir / 'cover-letter.txt'}",
                 markup=False)
    return 0


def cmd_tree_prepare(args) -> int:
    t = job.prepare_tree(args.tree, args.base, args.debian)
    ui.out.print(f"{t.path}  base {t.base_ref} ({t.base[:12]}), Linux {t.version}")
    return 0


def cmd_tree_path(args) -> int:
    print(tree.current().path)
    return 0


def add(sub) -> None:
    """Add this group's commands to the top-level subparsers."""
    p = sub.add_parser("doctor", help="what every stage needs: programs, files, kernel, KVM, series project")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("init", help="start an empty series project (patches/series, cover letter)")
    p.add_argument("dir", nargs="?", type=Path, default=Path("."), help="where (default: here)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("tree", help="prepare the kernel tree")
    tsub = p.add_subparsers(dest="tree_command", required=True)
    pp = tsub.add_parser("prepare", help=f"extract Debian's linux-source-{tree.DEFAULT_DEBIAN} (default), "
                                         "another --debian X.Y, or use --tree")
    pp.add_argument("--debian", metavar="X.Y", help="the Debian linux-source-X.Y to prepare, one tree per "
                                                     f"release (default {tree.DEFAULT_DEBIAN}, the series' base)")
    pp.add_argument("--tree", type=Path, help="an existing git kernel tree (never modified)")
    pp.add_argument("--base", default="HEAD", help="with --tree: the base ref (default HEAD)")
    pp.set_defaults(func=cmd_tree_prepare)
    pp = tsub.add_parser("path", help="print the prepared tree's directory")
    pp.set_defaults(func=cmd_tree_path)
