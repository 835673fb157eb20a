"""What the desk writes by e-mail, in Russian and English (the customer's language)."""

from __future__ import annotations

from typing import Any

from core.texts import STATUS_LABELS, lang_of

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "confirm_subject": "[#{id}] Мы получили ваш запрос: {title}",
        "confirm_body": (
            "Здравствуйте, {name}!\n\n"
            "Мы получили ваш запрос #{id} «{title}» и ответим как можно скорее.\n\n"
            "Страница запроса (ответы, статус, ваши сообщения):\n{link}\n"
            "Эта ссылка — ваш личный ключ к запросу, не пересылайте её.\n\n"
            "Можно просто ответить на это письмо: ответ попадёт в переписку по запросу.\n"
        ),
        "confirm_verify": (
            "\nПодтвердите, пожалуйста, что это ваш адрес (ссылка действует {days} дн.):\n"
            "{verify_link}\n"
        ),
        "reply_subject": "[#{id}] Ответ по запросу: {title}",
        "reply_body": (
            "{admin} ответил(а) по запросу #{id} «{title}»:\n\n{content}\n\n"
            "-- \nОтветьте на это письмо или откройте страницу запроса:\n{link}\n"
        ),
        "status_subject": "[#{id}] Статус запроса: {status}",
        "status_body": (
            "Статус вашего запроса #{id} «{title}»: {status}.\n\n"
            "Страница запроса:\n{link}\n"
        ),
        "status_rate": (
            "\nОцените, пожалуйста, нашу работу (1 — плохо, 5 — отлично):\n{rate_link}\n"
        ),
    },
    "en": {
        "confirm_subject": "[#{id}] We received your request: {title}",
        "confirm_body": (
            "Hello {name},\n\n"
            "We received your request #{id} \"{title}\" and will answer as soon as we can.\n\n"
            "The request's page (answers, status, your messages):\n{link}\n"
            "This link is your personal key to the request; do not forward it.\n\n"
            "You can simply reply to this e-mail: your reply joins the request's thread.\n"
        ),
        "confirm_verify": (
            "\nPlease confirm that this address is yours (the link works for {days} days):\n"
            "{verify_link}\n"
        ),
        "reply_subject": "[#{id}] Reply to your request: {title}",
        "reply_body": (
            "{admin} replied to your request #{id} \"{title}\":\n\n{content}\n\n"
            "-- \nReply to this e-mail or open the request's page:\n{link}\n"
        ),
        "status_subject": "[#{id}] Request status: {status}",
        "status_body": (
            "Your request #{id} \"{title}\" is now: {status}.\n\n"
            "The request's page:\n{link}\n"
        ),
        "status_rate": (
            "\nPlease rate our help (1 = poor, 5 = excellent):\n{rate_link}\n"
        ),
    },
}


def text(key: str, language: str | None, **kwargs: Any) -> str:
    lang = lang_of(language)
    if "status" in kwargs:
        kwargs["status"] = STATUS_LABELS[lang].get(kwargs["status"], kwargs["status"])
    return TEXTS[lang][key].format(**kwargs)
