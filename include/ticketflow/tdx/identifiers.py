"""Computer names and serial numbers in free text, as the service desk writes them.

Names are hyphenated: a department or prefix of letters, then parts of which
at least one is a long mix of letters and digits (`IC-EHLB760-F16`,
`L-C02XJ0AXJGH5`, `LSAF-D30H6J3`, `psyc-amiemgT01`). Serials stand alone, in
capitals, 8 to 14 characters mixing letters and digits (`C02XJ0AXJGH5`,
`R8YWA0LX6ZE`). Ordinary words (no digits), plain numbers and ticket numbers
(`#9291804`, `INC0012345`), dates and versions (`2026-11-24`, `Windows-10`,
`COVID-19`) do not match. A candidate is only a lead: the asset search
verifies it before anything is added.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

_NAME = re.compile(r"(?<![\w-])[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,16}){1,3}(?![\w-])")
_SERIAL = re.compile(r"(?<![\w-])[A-Z0-9]{8,14}(?![\w-])")
#: Letters then only digits: a ticket or request number (INC0012345, REQ123456), not a serial.
_NUMBERED = re.compile(r"[A-Z]{1,4}\d+")
_TAG = re.compile(r"<[^>]*>")


def _mixed(text: str) -> bool:
    return any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


@dataclass(frozen=True)
class Identifier:
    kind: str  # "name" or "serial"
    value: str


def plain_text(body: str) -> str:
    """Text of a feed entry that may be rich HTML."""
    return html.unescape(_TAG.sub(" ", body or ""))


def extract_identifiers(text: str) -> list[Identifier]:
    """Computer names and serials in `text`, in order of appearance, each once (case-insensitively)."""
    found: dict[str, Identifier] = {}
    for match in _NAME.finditer(text or ""):
        parts = match[0].split("-")
        if any(len(part) >= 5 and _mixed(part) for part in parts[1:]):
            found.setdefault(match[0].casefold(), Identifier("name", match[0]))
    for match in _SERIAL.finditer(text or ""):
        if _mixed(match[0]) and not _NUMBERED.fullmatch(match[0]):
            found.setdefault(match[0].casefold(), Identifier("serial", match[0]))
    return sorted(found.values(), key=lambda ident: (text or "").find(ident.value))
