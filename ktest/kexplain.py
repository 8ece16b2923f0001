"""Why a symbol did not get the value a fragment asked for, and what to set instead.

Reads kconfiglib's dependency expressions: the unmet ``depends on`` terms,
the selectors, the prompt; explanations name symbols as ``CONFIG_X=y``.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .kfragment import ConfigError, Fragment, Request


@dataclass
class Override:
    symbol: str
    old: str
    old_where: str
    new: str
    new_where: str


@dataclass
class Mismatch:
    symbol: str
    requested: str
    actual: str
    where: str
    reason: str
    hint: str = ""




def _check_requests(kconf, fragments: list[Fragment]) -> tuple[list[Request], list[Override]]:
    """Unknown symbols and bad types are errors; later requests win, and a
    contradiction between fragments is reported.  "# CONFIG_X is not set" for
    a symbol this tree lacks is met, not an error: a fragment that serves two
    releases turns off what only the newer has (debug.config: SLUB_TINY, 6.2+)."""
    import kconfiglib

    final: dict[str, Request] = {}
    overrides: list[Override] = []
    for frag in fragments:
        for r in frag.requests:
            sym = kconf.syms.get(r.symbol)
            if (sym is None or not sym.nodes) and r.value == "n":
                continue
            if sym is None or not sym.nodes:
                close = difflib.get_close_matches(r.symbol, list(kconf.syms), n=1)
                raise ConfigError(f"{r.where}: unknown symbol CONFIG_{r.symbol}: not in this tree's Kconfig"
                                  + (f" (did you mean CONFIG_{close[0]}?)" if close else ""))
            t = sym.orig_type
            ok = {kconfiglib.BOOL: r.value in ("y", "n"),
                  kconfiglib.TRISTATE: r.value in ("y", "m", "n"),
                  kconfiglib.INT: re.fullmatch(r"-?[0-9]+", r.value) is not None or r.value == "n",
                  kconfiglib.HEX: re.fullmatch(r"0[xX][0-9a-fA-F]+", r.value) is not None or r.value == "n",
                  kconfiglib.STRING: True}.get(t, False)
            if not ok:
                raise ConfigError(f"{r.where}: CONFIG_{r.symbol} is a {kconfiglib.TYPE_TO_STR[t]}: "
                                  f"{r.value!r} is not a value for it")
            prev = final.get(r.symbol)
            if prev is not None and prev.value != r.value:
                overrides.append(Override(r.symbol, prev.value, prev.where, r.value, r.where))
            final[r.symbol] = r
    return list(final.values()), overrides


def _actual(sym) -> str:
    import kconfiglib

    if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
        return sym.str_value
    # A prompt-less or invisible int/string that is not written counts as unset.
    return sym.str_value if sym.config_string else "n"


def _same(sym, requested: str, actual: str) -> bool:
    import kconfiglib

    if sym.orig_type is kconfiglib.HEX and requested != "n" and actual != "n":
        return int(requested, 16) == int(actual, 16)
    return requested == actual


_TRI = {"n": 0, "m": 1, "y": 2}


def _syms_in(expr) -> list:
    import kconfiglib

    out = []

    def walk(e):
        if isinstance(e, tuple):
            for x in e[1:]:
                walk(x)
        elif isinstance(e, kconfiglib.Symbol) and not e.is_constant and e.nodes:
            out.append(e)

    walk(expr)
    return out


def _failing_terms(expr, need: int) -> list:
    import kconfiglib

    return [t for t in kconfiglib.split_expr(expr, kconfiglib.AND) if kconfiglib.expr_value(t) < need]


def _has_prompt(sym) -> bool:
    return any(n.prompt for n in sym.nodes)


def _on(sym, need: int) -> str:
    import kconfiglib

    return f"CONFIG_{sym.name}={'y' if need == 2 or sym.orig_type is kconfiglib.BOOL else 'm'}"


def _enable_hint(sym, need: int, depth: int = 0, seen=None) -> list[str]:
    """Which symbols to set so that ``sym`` can reach ``need``: the off symbols
    in its failing dependency terms, followed down a few levels."""
    seen = seen if seen is not None else set()
    if sym in seen or depth > 3:
        return []
    seen.add(sym)
    return _expr_hint(sym.direct_dep, need, depth, seen)


def _expr_hint(expr, need: int, depth: int = 0, seen=None) -> list[str]:
    import kconfiglib

    seen = seen if seen is not None else set()
    hints: list[str] = []
    for term in _failing_terms(expr, need):
        if isinstance(term, kconfiglib.Symbol):
            if term.is_constant or not term.nodes:
                continue
            if not _has_prompt(term):
                selectors = _selectors(term)
                hints.append(f"CONFIG_{term.name} (no prompt: selected by "
                             f"{', '.join(selectors[:5]) or 'nothing'})")
                continue
            if kconfiglib.expr_value(term.direct_dep) < need:
                hints.extend(_enable_hint(term, need, depth + 1, seen))
            hints.append(_on(term, need))
        elif isinstance(term, tuple) and term[0] is kconfiglib.NOT and isinstance(term[1], kconfiglib.Symbol):
            hints.append(f"# CONFIG_{term[1].name} is not set")
        else:
            for s in _syms_in(term):
                if s.tri_value < need and _has_prompt(s):
                    hints.append(f"{_on(s, need)} (for {kconfiglib.expr_str(term)})")
                    break
    return list(dict.fromkeys(hints))


def _term_str(term) -> str:
    import kconfiglib

    text = kconfiglib.expr_str(term)
    if isinstance(term, tuple) and term[0] is kconfiglib.OR:
        text = f"({text})"
    return f"{text} [={kconfiglib.TRI_TO_STR[kconfiglib.expr_value(term)]}]"


def _selectors(sym, above: int = -1) -> list[str]:
    """The CONFIG_ names in the terms of sym's reverse dependency (select)
    whose value is above ``above``."""
    import kconfiglib

    names = []
    for term in kconfiglib.split_expr(sym.rev_dep, kconfiglib.OR):
        if kconfiglib.expr_value(term) <= above:
            continue
        for s in _syms_in(term)[:1]:
            names.append(f"CONFIG_{s.name}")
    return names


def _explain(sym, requested: str, actual: str) -> tuple[str, str]:
    """(why the symbol did not get the requested value, what to set instead)."""
    import kconfiglib

    expr_str, expr_value = kconfiglib.expr_str, kconfiglib.expr_value
    if sym.orig_type not in (kconfiglib.BOOL, kconfiglib.TRISTATE) and requested != "n" and actual != "n":
        if sym.visibility == 0:
            for node in sym.nodes:
                if node.prompt:
                    return (f"its prompt is hidden (visible if {expr_str(node.prompt[1])}), "
                            f"so the default {actual} stays", "; ".join(_expr_hint(node.prompt[1], 2)))
            return f"has no prompt: its default is {actual}", ""
        if sym.ranges:
            spans = ", ".join(f"{expr_str(lo)}..{expr_str(hi)}" for lo, hi, cond in sym.ranges if expr_value(cond))
            return f"out of range ({spans})", ""
        return "kconfig did not keep it", ""
    if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
        want, got = _TRI[requested], _TRI.get(actual, 0)
    else:
        want, got = (0, 2) if requested == "n" else (2, 0 if actual == "n" else 2)
    if want > got:
        need = want if sym.orig_type is kconfiglib.TRISTATE else 2
        if expr_value(sym.direct_dep) < need:
            terms = _failing_terms(sym.direct_dep, need)
            unmet = " && ".join(_term_str(t) for t in terms)
            reason = f"depends on {expr_str(sym.direct_dep)}; unmet: {unmet}"
            return reason, "; ".join(_enable_hint(sym, need))
        if not _has_prompt(sym):
            sel = _selectors(sym)
            return ("has no prompt: only a select or its default sets it",
                    f"enable one of {', '.join(sel[:5])}" if sel else "")
        for node in sym.nodes:
            if node.prompt and expr_value(node.prompt[1]) < need:
                return (f"its prompt is hidden: visible if {expr_str(node.prompt[1])}",
                        "; ".join(_expr_hint(node.prompt[1], need)))
        if sym.choice is not None and sym.choice.selection is not sym:
            sel = sym.choice.selection
            return (f"it is a choice member and the choice picked "
                    f"CONFIG_{sel.name if sel else '(none)'}", "")
        if sym.orig_type is kconfiglib.TRISTATE and want == 2 and sym.visibility == 1:
            return (f"limited to m: its dependencies are m ({expr_str(sym.direct_dep)})", "")
        return "kconfig did not keep it", ""
    if expr_value(sym.rev_dep) > want:
        on = [expr_str(t) for t in kconfiglib.split_expr(sym.rev_dep, kconfiglib.OR) if expr_value(t) > want]
        return f"selected by {', '.join(on)}", "disable " + ", ".join(_selectors(sym, want)[:5])
    if not _has_prompt(sym) or sym.visibility == 0:
        return f"cannot be changed here (no visible prompt); its default gives {actual}", ""
    if sym.choice is not None:
        return "it is the choice's only possible selection", ""
    if sym.orig_type is kconfiglib.TRISTATE and want == 1 and not kconfiglib.expr_value(sym.kconfig.modules):
        return "CONFIG_MODULES is off, so m becomes y", "CONFIG_MODULES=y"
    return "kconfig did not keep it", ""


def verify(kconf, requests: list[Request]) -> list[Mismatch]:
    """Requested against actual, for every symbol a fragment asked for."""
    out = []
    for r in requests:
        sym = kconf.syms[r.symbol]
        actual = _actual(sym)
        if _same(sym, r.value, actual):
            continue
        reason, hint = _explain(sym, r.value, actual)
        out.append(Mismatch(r.symbol, r.value, actual, r.where, reason, hint))
    return out
