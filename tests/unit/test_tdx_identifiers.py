"""Computer names and serials are found in ticket text; ordinary words, ticket numbers and dates are not."""

import pytest

from ticketflow.tdx.identifiers import Identifier, extract_identifiers, plain_text


@pytest.mark.parametrize(("text", "expected"), [
    ("Laptop IC-EHLB760-F16 will not boot", [Identifier("name", "IC-EHLB760-F16")]),   # Dept-Location-Id
    ("Reimage L-C02XJ0AXJGH5 please", [Identifier("name", "L-C02XJ0AXJGH5")]),         # L-Serial
    ("Machine: LSAF-D30H6J3.", [Identifier("name", "LSAF-D30H6J3")]),                  # Dept-Serial
    ("psyc-amiemgT01 is slow", [Identifier("name", "psyc-amiemgT01")]),                # lowercase variant
    ("Serial C02XJ0AXJGH5 on the sticker", [Identifier("serial", "C02XJ0AXJGH5")]),   # Apple serial
    ("S/N R8YWA0LX6ZE", [Identifier("serial", "R8YWA0LX6ZE")]),                        # generic serial
    ("IC-EHLB760-F16 and ic-ehlb760-f16 again, then R8YWA0LX6ZE",
     [Identifier("name", "IC-EHLB760-F16"), Identifier("serial", "R8YWA0LX6ZE")]),
])
def test_every_naming_pattern_of_the_seed_is_found(text, expected):
    assert extract_identifiers(text) == expected


@pytest.mark.parametrize("text", [
    "Please help, my computer is broken and the follow-up e-mail never came",  # ordinary words, hyphens
    "Re: ticket #9291804, see also 9291805 and TDX-9291806",                   # ticket numbers
    "INC0012345 REQ123456 RITM0042",                                           # numbered requests
    "Due 2026-11-24, or 11/24/2026, at 10:30",                                 # dates and times
    "Windows-10 on x86-64, COVID-19 rules, ISO-8601, UTF-8, HTTP2, WIN10",     # versions and standards
    "PLEASE ESCALATE URGENTLY",                                                # shouting
    "",
])
def test_text_without_identifiers_yields_none(text):
    assert extract_identifiers(text) == []


def test_rich_html_feed_bodies_are_read_as_text():
    body = "<p>It is <b>C02XJ0AXJGH5</b>&nbsp;on desk&nbsp;4</p>"
    assert extract_identifiers(plain_text(body)) == [Identifier("serial", "C02XJ0AXJGH5")]
