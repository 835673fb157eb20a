"""Texts of the customer web pages (Russian by default, English) and language choice."""

from __future__ import annotations

from typing import Any

from sanic import Request

from core.texts import CATEGORY_LABELS, STATUS_LABELS

LANGUAGES = ("ru", "en")
LANG_COOKIE = "lang"

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "site_title": "Служба поддержки",
        "skip_link": "Перейти к содержимому",
        "switch_lang": "English",
        "switch_lang_code": "en",
        "form_heading": "Новое обращение",
        "form_intro": "Опишите вопрос — мы ответим на странице обращения. "
        "Регистрация не нужна: вы получите личную ссылку.",
        "name": "Ваше имя",
        "email": "Электронная почта",
        "title": "Тема",
        "description": "Описание",
        "description_hint": "Что случилось, что вы ожидали, номер заказа, если есть.",
        "category": "Категория",
        "attachments": "Вложения",
        "attachments_hint": "Необязательно. До {max_files} файлов, всего не более {mb} МБ.",
        "submit": "Отправить обращение",
        "sending": "Отправка…",
        "required_mark": "обязательное поле",
        "err_required": "Заполните это поле.",
        "err_email": "Введите правильный адрес электронной почты.",
        "err_too_long": "Слишком длинное значение: не более {max} символов.",
        "err_too_big": "Файлы слишком большие: {size} МБ, допускается не более {mb} МБ.",
        "err_too_many": "Слишком много файлов: не более {max_files}.",
        "err_category": "Выберите категорию из списка.",
        "err_rate": "Слишком много отправок. Попробуйте снова через {seconds} с.",
        "err_banned": "Мы не можем принять обращение с этим адресом. Если это ошибка, напишите нам другим способом.",
        "rate_heading": "Подождите немного",
        "back_to_request": "Вернуться к обращению",
        "edit_refused_heading": "Сообщение не изменено",
        "err_edit_gone": "Это сообщение уже удалено или недоступно.",
        "edit_toggle": "Изменить или удалить",
        "edit_label": "Новый текст",
        "edit_submit": "Сохранить",
        "delete_submit": "Удалить сообщение",
        "edited_mark": "изменено",
        "err_network": "Нет связи с сервером. Проверьте подключение и попробуйте снова.",
        "err_generic": "Не удалось отправить. Проверьте поля и попробуйте снова.",
        "err_form_summary": "Исправьте ошибки в форме.",
        "created_notice": "Обращение №{id} создано. Сохраните адрес этой страницы "
        "в закладках: только по этой ссылке можно открыть обращение.",
        "request_heading": "Обращение №{id}",
        "status": "Статус",
        "category_short": "Категория",
        "created": "Создано",
        "your_description": "Описание",
        "thread_heading": "Переписка",
        "no_messages": "Сообщений пока нет. Мы ответим здесь.",
        "you": "Вы",
        "support": "Поддержка",
        "system": "Система",
        "reply_heading": "Ответить",
        "reply_label": "Ваше сообщение",
        "reply_submit": "Отправить",
        "reply_sent": "Сообщение отправлено.",
        "reply_files": "Прикрепить файлы",
        "closed_notice": "Обращение закрыто, новые сообщения не принимаются. "
        "Если вопрос остался, создайте новое обращение.",
        "request_files": "Вложения к обращению",
        "new_message_from": "Новое сообщение: {name}",
        "status_changed": "Статус обращения: {status}",
        "live": "Страница обновляется автоматически.",
        "not_found_heading": "Обращение не найдено",
        "not_found_text": "Ссылка неверна или устарела. Проверьте адрес или создайте новое обращение.",
        "new_request_link": "Создать обращение",
        "verify_ok_heading": "Адрес подтверждён",
        "verify_ok_text": "Спасибо! Адрес {email} подтверждён.",
        "verify_bad_heading": "Ссылка не работает",
        "verify_bad_text": "Ссылка подтверждения неверна или уже использована. Ничего не изменилось.",
        "verify_expired_text": "Срок действия ссылки подтверждения истёк. Ничего не изменилось.",
        "verify_back": "К обращению",
        "download": "скачать",
        "mb": "МБ",
        "kb": "КБ",
        "bytes": "Б",
        "loading": "Загрузка…",
        "load_failed": "Не удалось загрузить переписку. Повторяем попытку…",
        "rating_heading": "Оцените нашу работу",
        "rating_intro": "Запрос выполнен. Насколько вы довольны? 1 — плохо, 5 — отлично. "
        "Оценку можно изменить, пока запрос не закрыт.",
        "rating_scale": "Оценка от 1 до 5",
        "rating_button": "Оценка {n} из 5",
        "rating_comment": "Комментарий (необязательно)",
        "rating_current": "Ваша оценка: {n} из 5.",
        "rating_thanks": "Спасибо за оценку!",
        "err_rating": "Выберите оценку от 1 до 5.",
    },
    "en": {
        "site_title": "Support desk",
        "skip_link": "Skip to content",
        "switch_lang": "Русский",
        "switch_lang_code": "ru",
        "form_heading": "New request",
        "form_intro": "Describe your question and we will answer on the request's page. "
        "No sign-up needed: you get a private link.",
        "name": "Your name",
        "email": "Email",
        "title": "Subject",
        "description": "Description",
        "description_hint": "What happened, what you expected, your order number if any.",
        "category": "Category",
        "attachments": "Attachments",
        "attachments_hint": "Optional. Up to {max_files} files, {mb} MB in total.",
        "submit": "Send request",
        "sending": "Sending…",
        "required_mark": "required",
        "err_required": "Please fill in this field.",
        "err_email": "Enter a valid email address.",
        "err_too_long": "Too long: at most {max} characters.",
        "err_too_big": "The files are too large: {size} MB, at most {mb} MB allowed.",
        "err_too_many": "Too many files: at most {max_files}.",
        "err_category": "Choose a category from the list.",
        "err_rate": "Too many submissions. Try again in {seconds} s.",
        "err_banned": "We cannot accept a request from this address. If this is a mistake, please contact us another way.",
        "rate_heading": "Please wait a moment",
        "back_to_request": "Back to the request",
        "edit_refused_heading": "Message not changed",
        "err_edit_gone": "This message has been deleted or is not available.",
        "edit_toggle": "Edit or delete",
        "edit_label": "New text",
        "edit_submit": "Save",
        "delete_submit": "Delete message",
        "edited_mark": "edited",
        "err_network": "Cannot reach the server. Check your connection and try again.",
        "err_generic": "Could not send. Check the fields and try again.",
        "err_form_summary": "Please correct the errors in the form.",
        "created_notice": "Request #{id} has been created. Bookmark this page: "
        "this link is the only way to open your request.",
        "request_heading": "Request #{id}",
        "status": "Status",
        "category_short": "Category",
        "created": "Created",
        "your_description": "Description",
        "thread_heading": "Conversation",
        "no_messages": "No messages yet. We will answer here.",
        "you": "You",
        "support": "Support",
        "system": "System",
        "reply_heading": "Reply",
        "reply_label": "Your message",
        "reply_submit": "Send",
        "reply_sent": "Message sent.",
        "reply_files": "Attach files",
        "closed_notice": "This request is closed and accepts no new messages. "
        "If you still need help, create a new request.",
        "request_files": "Request attachments",
        "new_message_from": "New message: {name}",
        "status_changed": "Request status: {status}",
        "live": "This page updates automatically.",
        "not_found_heading": "Request not found",
        "not_found_text": "The link is wrong or outdated. Check the address or create a new request.",
        "new_request_link": "Create a request",
        "verify_ok_heading": "Address confirmed",
        "verify_ok_text": "Thank you! The address {email} is confirmed.",
        "verify_bad_heading": "This link does not work",
        "verify_bad_text": "The confirmation link is wrong or has already been used. Nothing changed.",
        "verify_expired_text": "The confirmation link has expired. Nothing changed.",
        "verify_back": "Back to the request",
        "download": "download",
        "mb": "MB",
        "kb": "KB",
        "bytes": "B",
        "loading": "Loading…",
        "load_failed": "Could not load the conversation. Retrying…",
        "rating_heading": "Rate our work",
        "rating_intro": "Your request is completed. How satisfied are you? 1 is poor, 5 is excellent. "
        "You can change your rating until the request is closed.",
        "rating_scale": "Rating from 1 to 5",
        "rating_button": "Rating {n} of 5",
        "rating_comment": "Comment (optional)",
        "rating_current": "Your rating: {n} of 5.",
        "rating_thanks": "Thank you for your rating!",
        "err_rating": "Choose a rating from 1 to 5.",
    },
}


def parse_accept_language(header: str) -> str | None:
    """The supported language the browser prefers most (`Accept-Language`), if any."""
    best: tuple[float, int, str] | None = None
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower()[:2]
        if code not in LANGUAGES:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q <= 0:
            continue
        key = (-q, index, code)
        if best is None or key < best:
            best = key
    return best[2] if best else None


def choose_language(request: Request, default: str) -> str:
    """`?lang=` wins, then the `lang` cookie (set by the switcher), then Accept-Language,
    then the site default (LANGUAGE, Russian out of the box)."""
    for candidate in (request.args.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    return parse_accept_language(request.headers.get("accept-language", "")) or (
        default if default in LANGUAGES else "ru"
    )


def text(key: str, lang: str, **kwargs: Any) -> str:
    template = TEXTS.get(lang, TEXTS["ru"]).get(key) or TEXTS["ru"][key]
    return template.format(**kwargs) if kwargs else template


def client_texts(lang: str, **kwargs: Any) -> dict[str, Any]:
    """Everything the page scripts need to speak the page's language."""
    table = dict(TEXTS.get(lang, TEXTS["ru"]))
    table["status_labels"] = STATUS_LABELS[lang]
    table["category_labels"] = CATEGORY_LABELS[lang]
    table.update(kwargs)
    return table
