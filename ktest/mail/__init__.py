"""Mailing-list-ready patch mail for the series branch, and sending it.

One version's journey, each step a module (each imports only those above it
in this list, and common below all of them):

    common     MailError, Message, MailSet, mail.json (read, write, edits)
    versions   refs/ktest/mail/vN: which versions went out, "Changes in vN"
    cover      the cover letter's text: patches/cover-letter.txt or the branch description
    identity   the sender, and the sender's Signed-off-by at the end of each chain
    b4         b4 makes the same series, compared
    compose    git format-patch, headers encoded once, the checks; writes the directory
    delivery   SMTP, one message at a time, each delivery recorded; --resume

Nothing leaves the machine unless ``send`` is called, and the files in the
output directory are byte for byte what ``send`` delivers.
"""
from ..check import Problem, gate, mailinfo
from .b4 import B4Comparison, b4_version, compare, via_b4
from .common import MAIL_JSON, MailError, MailSet, Message, load, read_json, read_message
from .compose import MailOptions, format_patch, output_dir, prepare, series_range, set_headers
from .cover import bench_section, blurb, cover_text, fill_cover, latest_results, load_template, parse_cover
from .delivery import SmtpConfig, envelope_from, preflight, preview, resume_dir, send, send_summary, smtp_config
from .identity import sender_ident, signoff_chains, unsigned
from .versions import Mailed, changelog, changes_text, choose_version, record, record_delivery, recorded

__all__ = [
    "Problem", "gate", "mailinfo", "B4Comparison", "b4_version", "compare", "via_b4",
    "MAIL_JSON", "MailError", "MailSet", "Message", "load", "read_json", "read_message",
    "MailOptions", "format_patch", "output_dir", "prepare", "series_range", "set_headers",
    "bench_section", "blurb", "cover_text", "fill_cover", "latest_results", "load_template", "parse_cover",
    "SmtpConfig", "envelope_from", "preflight", "preview", "resume_dir", "send", "send_summary", "smtp_config",
    "sender_ident", "signoff_chains", "unsigned",
    "Mailed", "changelog", "changes_text", "choose_version", "record", "record_delivery", "recorded",
]
