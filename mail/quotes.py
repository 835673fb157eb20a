"""The new part of a reply by e-mail: the text the customer wrote, without the quoted
message below it, their signature, or an HTML wrapper.

Rules (what mail clients actually produce): the reply ends at the first quote header
("On Mon, 1 Dec 2026 ... wrote:", possibly over two lines; "... написал(а):"; Outlook's
"-----Original Message-----" or a "From:"/"От:" header block after an underscore line;
"Forwarded message"), at a signature delimiter ("-- "), or at "Sent from my iPhone"-like
lines; lines quoted with ">" are dropped wherever they are. Linear in the text's length.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage, Message
from html.parser import HTMLParser

_HEADER_LINES = [
    re.compile(r"^\s*on\b.{0,300}\bwrote:\s*$", re.I),
    re.compile(r"^\s*.{0,300}\b(написал|написала|написал\(а\)|пишет)\s*:\s*$", re.I),
    re.compile(r"^\s*-{2,}\s*(original message|исходное сообщение|forwarded message|"
               r"пересылаемое сообщение|перенаправленное сообщение)", re.I),
    re.compile(r"^\s*_{10,}\s*$"),
    re.compile(r"^\s*(from|от|sent|отправлено|date|дата):\s.+$", re.I),
]
_TWO_LINE_START = re.compile(r"^\s*(on\b.{0,300}|.{0,300}\d{1,2}:\d{2}.{0,100})$", re.I)
_TWO_LINE_END = re.compile(r"^\s*.{0,200}\b(wrote|написал|написала|пишет)\s*:\s*$", re.I)
_FIELD = re.compile(r"^\s*(from|от|sent|отправлено|date|дата):", re.I)
_SIGNATURE = re.compile(r"^(-- ?|--)$")
_SENT_FROM = re.compile(r"^\s*(sent from my|отправлено (с|из)|get outlook for)\b", re.I)


def strip_quoted(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for n, line in enumerate(lines):
        bare = line.rstrip()
        if _SIGNATURE.match(bare) or _SENT_FROM.match(bare):
            break
        if any(p.match(bare) for p in _HEADER_LINES):
            # A "From:" line only starts a quote block when it follows a blank line or
            # a separator, not when a customer writes "From: my account page ..." mid-text.
            if _FIELD.match(bare) and (
                not any(k.strip() for k in kept) or kept[-1].strip()
            ):
                kept.append(line)
                continue
            break
        nxt = lines[n + 1].rstrip() if n + 1 < len(lines) else ""
        if _TWO_LINE_START.match(bare) and _TWO_LINE_END.match(nxt) and not nxt.lstrip().startswith(">"):
            break
        if bare.lstrip().startswith(">"):
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    while kept and not kept[0].strip():
        kept.pop(0)
    return "\n".join(line.rstrip() for line in kept)


class _TextOf(HTMLParser):
    _BREAKS = {"br", "p", "div", "li", "tr", "blockquote", "h1", "h2", "h3"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._quote = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("style", "script", "head"):
            self._skip += 1
        if tag == "blockquote":
            self._quote += 1
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head") and self._skip:
            self._skip -= 1
        if tag == "blockquote" and self._quote:
            self._quote -= 1
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip and not self._quote:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextOf()
    parser.feed(markup)
    parser.close()
    text = html.unescape("".join(parser.parts))
    return re.sub(r"\n{3,}", "\n\n", text)


def reply_text(message: Message) -> str:
    """The customer's new text in a parsed message (text/plain preferred, HTML otherwise)."""
    body = None
    if isinstance(message, EmailMessage):
        body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        content = body.get_content()
    except (LookupError, UnicodeError):  # an unknown charset
        payload = body.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    if body.get_content_type() == "text/html":
        content = html_to_text(content)
    return strip_quoted(content)
