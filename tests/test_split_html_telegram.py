"""The splitter against Telegram's own HTML rules (tests/fake_telegram.parse_telegram_html):
every part it makes is a message Telegram accepts, and the text a reader sees is kept, when
the cut falls on a tag, inside an entity, inside a link's tag or between nested tags.

And the fake itself parses like Telegram: what Telegram refuses, it refuses with 400 "can't
parse entities".
"""

from __future__ import annotations

import html as htmlmod

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telegram_delivery.outbox import MIN_SPLIT_LIMIT, split_html, tg_len
from tests.fake_telegram import TelegramError, parse_telegram_html
from tests.test_split_html import ATOMS, TAGS, html


def parts_parse(text: str, limit: int, **kw) -> list[str]:
    parts = split_html(text, limit, **kw)
    for part in parts:
        assert tg_len(part) <= limit
        parse_telegram_html(part)  # raises TelegramError 400 where Telegram would
    return parts


def seen(text: str) -> str:
    """What a reader sees, ignoring the whitespace the splitter trims at cuts."""
    return "".join(parse_telegram_html(text).split())


# --- the fake parses like Telegram ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    "<b>open", "<b>x</i>", "</b>", "<br>", "<div>x</div>", "a < b", "1 <2", "<b", "<a href='x'",
    "AT&T", "&am", "&nbsp;", "&#0;", "&#xD800;", "<span>x</span>", '<span class="x">y</span>',
    "<b><i>x</b></i>",
])
def test_the_fake_refuses_what_telegram_refuses(bad):
    with pytest.raises(TelegramError) as exc:
        parse_telegram_html(bad)
    assert exc.value.status == 400 and "can't parse entities" in exc.value.description


@pytest.mark.parametrize("good,shown", [
    ("<b>bold</b> <i>it</i> <u>u</u> <s>s</s>", "bold it u s"),
    ("<strong>a</strong><em>b</em><ins>c</ins><strike>d</strike><del>e</del>", "abcde"),
    ('<a href="https://x.org/?a=1&amp;b=2">link</a>', "link"),
    ("<code>x &lt; y</code> <pre><code class=\"language-py\">1</code></pre>", "x < y 1"),
    ('<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>', "st"),
    ("<blockquote expandable>q</blockquote>", "q"),
    ("&lt;&gt;&amp;&quot;&#128512;&#x1F600;", '<>&"😀😀'),
    ("<B>caps</B>", "caps"),
])
def test_the_fake_accepts_telegrams_html(good, shown):
    assert parse_telegram_html(good) == shown


# --- the splitter's parts are accepted -------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=html, limit=st.integers(min_value=MIN_SPLIT_LIMIT, max_value=240))
def test_every_part_is_html_telegram_accepts_and_nothing_is_lost(text: str, limit: int) -> None:
    parse_telegram_html(text)  # the generator makes valid input
    parts = parts_parse(text, limit)
    assert "".join(seen(p) for p in parts) == seen(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=html, limit=st.integers(min_value=MIN_SPLIT_LIMIT, max_value=200),
       max_parts=st.integers(min_value=1, max_value=3))
def test_parts_cut_at_max_parts_with_a_note_are_accepted(text: str, limit: int, max_parts: int) -> None:
    parts = parts_parse(text, limit, max_parts=max_parts, more="<i>✂️ the rest is on request #7</i>")
    assert len(parts) <= max_parts


def _padded(boundary: str, offset: int, limit: int = 64) -> str:
    """`boundary` placed so that it straddles a cut at `limit`, shifted by `offset`."""
    return "x" * (limit - offset) + boundary + " tail " * 30


@pytest.mark.parametrize("offset", range(0, 40))
@pytest.mark.parametrize("boundary", [
    "&amp;&lt;&gt;&quot;&#128512;&#x1F600;",
    '<a href="https://example.com/a?b=1&amp;c=2">a link text</a>',
    "<b>bold <i>both <u>all three</u></i></b>",
    "<pre><code class=\"language-python\">print(1)</code></pre>",
    '<span class="tg-spoiler">hidden</span>',
    "<blockquote expandable>quoted words</blockquote>",
    "😀&amp;😀<b>😀</b>",
])
def test_a_cut_on_a_tag_or_entity_boundary_gives_parts_telegram_accepts(boundary: str, offset: int) -> None:
    text = _padded(boundary, offset)
    parts = parts_parse(text, 64)
    assert "".join(seen(p) for p in parts) == seen(text)


@pytest.mark.parametrize("atom", [a for a in ATOMS if a.strip()])
def test_escaped_user_text_of_every_kind_splits_into_accepted_parts(atom: str) -> None:
    raw = htmlmod.unescape(atom) * 200
    text = htmlmod.escape(raw, quote=False)
    parts = parts_parse(text, 100)
    assert "".join(parse_telegram_html(p) for p in parts).replace("\n", "").replace(" ", "") == \
        raw.replace("\n", "").replace(" ", "")


def test_every_tag_pair_the_desk_uses_is_known_to_telegram() -> None:
    for opening, closing in TAGS:
        parse_telegram_html(f"{opening}x{closing}")


def test_a_text_that_fits_max_parts_is_not_cut_when_its_last_part_closes_its_tags() -> None:
    """Found by the property test: the last part's room was reckoned with the open tags'
    closing length counted twice (once for the stack, once in the rest of the text), so a
    text that fitted in 3 parts lost its end to a needless "full text" note."""
    flag = "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    family = "👨\u200d👩\u200d👧"
    text = (f"<b><tg-spoiler><b>aaaaaaaaaaслово слово \n\naaaaaaword word {family}{flag}</b>"
            f'<a href="https://example.com/?a=1&amp;b=2">a {family}{family}{flag}word </a>'
            f"<b>word {flag}</b></tg-spoiler></b>")
    assert split_html(text, 160, max_parts=3, more="<i>…full text on the request</i>") == split_html(text, 160)
