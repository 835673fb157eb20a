"""Texts the scheduler posts to Telegram (HTML), in Russian and English.

Short lines, one fact per line: a digest or a reminder is read at a glance on a phone.
Values that come from users (titles, names) are escaped by the caller with html.escape.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.texts import lang_of

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "digest_title": "📊 <b>Сводка</b> · {when}",
        "digest_chart": "<b>Запросы по дням за 7 дней</b> (цвет — статус сейчас)\n{legend}",
        "digest_totals": "Всего: <b>{total}</b> · открыто: <b>{open}</b> · в работе: <b>{progress}</b>",
        "digest_done": "Выполнено сегодня: <b>{today}</b> · доля выполненных: <b>{rate}%</b>",
        "digest_since": "<b>С прошлой сводки</b> ({since})",
        "digest_since_day": "<b>За 24 часа</b>",
        "digest_changes": "новых: {new} · выполнено: {completed} · закрыто: {closed}",
        "digest_load": "<b>Нагрузка</b> (в работе / выполнено сегодня)",
        "digest_load_line": "{name}: {progress} / {today}",
        "digest_load_week": " · за 7 дн.: {week}",
        "digest_load_frt": " · первый ответ: {frt}",
        "digest_load_csat": " · ⭐ {avg}",
        "digest_csat": "Оценка клиентов: <b>{avg}</b> из 5 ({n} оц.)",
        "digest_csat_none": "Оценок клиентов пока нет",
        "digest_load_more": "…и ещё {n}",
        "digest_nobody": "нет администраторов",
        "digest_oldest": "<b>Дольше всех ждёт</b>",
        "digest_oldest_line": "#{id} «{title}» · {age} · {priority}",
        "digest_no_open": "<b>Открытых запросов нет</b> 🎉",
        "remind_one": "⏰ <b>Запрос #{id} ждёт {age}</b>, никто не взял\n«{title}»\n{priority} · {customer}",
        "remind_many": "⏰ <b>{n} запросов ждут</b>, никто не взял:",
        "remind_line": "#{id} «{title}» · {age} · {priority}",
        "escalate_one": "🚨 <b>Эскалация</b>: запрос #{id} не взят уже {age}\n«{title}»\n{priority} · {customer}",
        "escalate_many": "🚨 <b>Эскалация</b>: {n} запросов не взяты в работу:",
        "eta_one": "⌛ <b>Срок по запросу #{id} истёк</b> {age} назад\n«{title}»",
        "more": "…и ещё {n}",
        "btn_take": "Взять",
        "d": "{n} д",
        "h": "{n} ч",
        "min": "{n} мин",
    },
    "en": {
        "digest_title": "📊 <b>Digest</b> · {when}",
        "digest_totals": "Total: <b>{total}</b> · open: <b>{open}</b> · in progress: <b>{progress}</b>",
        "digest_done": "Completed today: <b>{today}</b> · completion rate: <b>{rate}%</b>",
        "digest_since": "<b>Since the last digest</b> ({since})",
        "digest_since_day": "<b>Last 24 hours</b>",
        "digest_changes": "new: {new} · completed: {completed} · closed: {closed}",
        "digest_load": "<b>Load</b> (in progress / completed today)",
        "digest_load_line": "{name}: {progress} / {today}",
        "digest_load_week": " · 7 days: {week}",
        "digest_load_frt": " · first reply: {frt}",
        "digest_load_csat": " · ⭐ {avg}",
        "digest_csat": "Customer satisfaction: <b>{avg}</b> of 5 ({n} ratings)",
        "digest_chart": "<b>Requests per day, last 7 days</b> (colour: status now)\n{legend}",
        "digest_csat_none": "No customer ratings yet",
        "digest_load_more": "…and {n} more",
        "digest_nobody": "no admins",
        "digest_oldest": "<b>Waiting longest</b>",
        "digest_oldest_line": "#{id} “{title}” · {age} · {priority}",
        "digest_no_open": "<b>No open requests</b> 🎉",
        "remind_one": "⏰ <b>Request #{id} has waited {age}</b>, nobody took it\n“{title}”\n{priority} · {customer}",
        "remind_many": "⏰ <b>{n} requests are waiting</b>, nobody took them:",
        "remind_line": "#{id} “{title}” · {age} · {priority}",
        "escalate_one": "🚨 <b>Escalation</b>: request #{id} not taken for {age}\n“{title}”\n{priority} · {customer}",
        "escalate_many": "🚨 <b>Escalation</b>: {n} requests are not taken:",
        "eta_one": "⌛ <b>Request #{id} is past its due time</b> by {age}\n“{title}”",
        "more": "…and {n} more",
        "btn_take": "Take",
        "d": "{n} d",
        "h": "{n} h",
        "min": "{n} min",
    },
}


def st(key: str, lang: str | None, **kw: Any) -> str:
    """Scheduler text `key` in `lang` (Russian by default)."""
    return TEXTS[lang_of(lang)][key].format(**kw)


def format_age(age: timedelta, lang: str | None) -> str:
    """A duration in at most two units: "2 д 3 ч", "3 ч 15 мин", "45 мин"."""
    minutes = max(0, int(age.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        parts = [st("d", lang, n=days)] + ([st("h", lang, n=hours)] if hours else [])
    elif hours:
        parts = [st("h", lang, n=hours)] + ([st("min", lang, n=mins)] if mins else [])
    else:
        parts = [st("min", lang, n=mins)]
    return " ".join(parts)


def short(text: str, limit: int = 60) -> str:
    """Cut a title to fit one line on a phone."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
