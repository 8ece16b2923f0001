"""Addresses kept decoded, encoded once in headers."""
import email
import email.policy

import pytest

from ktest import addresses


@pytest.mark.parametrize("text, plain", [
    ("Jürgen Groß <jg@example.org>", "Jürgen Groß <jg@example.org>"),
    ("=?utf-8?q?J=C3=BCrgen_Gro=C3=9F?= <jg@example.org>", "Jürgen Groß <jg@example.org>"),   # encoded input
    ("Michael S. Tsirkin <mst@redhat.com>", '"Michael S. Tsirkin" <mst@redhat.com>'),
    ('"Doe, John" <jd@example.org>', '"Doe, John" <jd@example.org>'),
    ("plain@example.org", "plain@example.org"),
])
def test_normalise_keeps_what_the_user_wrote(text, plain):
    assert addresses.normalise(text) == plain
    assert addresses.normalise(plain) == plain          # idempotent: never encoded, never decoded twice


def test_header_encodes_each_name_once_and_parses_back():
    people = ["Jürgen Groß <jg@example.org>", '"Doe, John" <jd@example.org>', "Zoë Ζαχαρίου <zz@example.org>",
              "王小明 <wang@example.org>", "a@example.org"]
    line = addresses.header("Cc", people)
    assert line.isascii() and all(len(ln) <= 78 for ln in line.splitlines())
    msg = email.message_from_string(line + "\n\nbody\n", policy=email.policy.default)
    assert [addresses.plain(a.display_name, a.addr_spec) for a in msg["Cc"].addresses] == [
        addresses.normalise(p) for p in people]


def test_a_non_ascii_mailbox_stays_utf8_and_needs_smtputf8():
    assert addresses.encoded("Jörg <jörg@example.org>").endswith("<jörg@example.org>")
    assert addresses.needs_smtputf8("jörg@example.org") and not addresses.needs_smtputf8("Jörg <j@example.org>")


@pytest.mark.parametrize("bad", ["", "nobody", "Name <>", "@example.org"])
def test_not_an_address(bad):
    with pytest.raises(addresses.AddressError, match="is not an email address"):
        addresses.normalise(bad)
