"""Texts the domain writes into threads (system messages), in Russian and English.

Channel texts (bot buttons, web form labels) live with their channel; these are the ones
stored in the database, written in the language of the user who caused them.
"""

from __future__ import annotations

from typing import Any

DEFAULT_LANGUAGE = "ru"

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "request_taken": "Запрос взят в работу администратором {name}",
        "request_completed": "Запрос завершен администратором {name}",
        "request_closed": "Запрос закрыт директором {name}",
        "request_auto_closed": "Запрос автоматически закрыт: нет новых сообщений {days} дн.",
        "request_reopened": "Запрос переоткрыт пользователем {name}",
        "request_reassigned": "Запрос переназначен администратору {name}",
        "request_status_changed": "Статус запроса изменен на «{status}» пользователем {name}",
        "chat_joined": "{name} присоединился к чату",
        "chat_left": "{name} покинул чат",
        "attachment_added": "Вложение: {name}",
        "support_name": "Поддержка",
        # errors
        "err_already_assigned": "Запрос уже назначен другому администратору",
        "err_already_assigned_to": "Запрос уже взят администратором {name}",
        "err_complete_foreign": "Вы не можете завершить чужой запрос",
        "err_not_in_progress": "Завершить можно только запрос в работе (сейчас: {status})",
        "err_cannot_take_status": "Взять можно только открытый запрос (сейчас: {status})",
        "err_close_status": "Закрыть можно только выполненный запрос (сейчас: {status})",
        "err_reopen_status": "Переоткрыть можно только выполненный или закрытый запрос",
        "err_director_only": "Это действие доступно только директору",
        "err_staff_only": "Это действие доступно только администраторам",
        "err_not_found": "Не найдено.",
        "err_no_permission": "У вас недостаточно прав для выполнения данного действия.",
        "err_manage_request": "Вы не можете управлять этим запросом",
        "err_not_participant": "Вы не участник этого чата",
        "err_chat_owner_only": "Переименовать, изменить тип или закрыть чат может только его создатель или директор",
        "err_comm_sender_only": "Изменять сообщение может только его отправитель",
        "err_comm_staff_only": "Участниками могут быть только активные администраторы и директора.",
        "err_banned": "Ваш аккаунт заблокирован: новые запросы и сообщения не принимаются.",
        "err_not_customer": "Заблокировать можно только клиента.",
        "err_self_lockout": "Нельзя отключить свою учетную запись или сменить себе роль.",
        "chat_removed": "{name} удален(а) из чата",
        "err_attach_new_message": "Файл нельзя добавить к уже отправленному сообщению; отправьте его новым сообщением.",
        "err_bad_assignee": "Назначить можно только администратора или директора",
        "err_move_not_allowed": "Нельзя перевести запрос из статуса «{current}» в «{target}». Отсюда можно: {allowed}",
        "err_move_none": "никуда (используйте «Взять в работу» или «Переназначить»)",
        "err_closed": "Запрос закрыт; новые сообщения не принимаются",
        "err_edit_not_own": "Изменять и удалять можно только свои сообщения.",
        "err_edit_window": "Сообщение можно изменить или удалить в течение {hours} ч после отправки; это время прошло.",
        "err_edit_system": "Системные сообщения не изменяются.",
        "err_rating_range": "Оценка — целое число от 1 до 5.",
        "err_rating_status": "Оценить можно только выполненный запрос (до его закрытия).",
        "err_canned_not_found": "Шаблон ответа «{shortcut}» не найден.",
        "err_canned_shortcut": "Короткое имя: латинские буквы, цифры, _ и -, до 32 символов.",
        "err_canned_taken": "Шаблон с таким коротким именем и языком уже есть.",
        "err_canned_owner": "Изменять шаблон может только его автор (общий — ещё и директор).",
        "canned_customer_fallback": "клиент",
        "err_blank": "Это поле не может быть пустым.",
        "err_not_string": "Ожидалась строка.",
        "err_too_long": "Убедитесь, что это значение содержит не более {max} {chars}.",
        "err_tags_type": "Ожидался список строк.",
        "err_tags_count": "Не более {max} тегов.",
        "err_tag_blank": "Тег не может быть пустым.",
        "err_tag_long": "Тег может содержать не более {max} {chars}.",
        "err_body_too_large": "Тело запроса больше {max} байт.",
        "err_required_field": "Обязательное поле.",
        "err_bool": "Требуется логическое значение.",
        "err_webhook_url": "Введите правильный URL.",
        "err_webhook_scheme": "Допустимы только адреса http:// и https://.",
        "err_webhook_private": "Адреса в локальных и частных сетях запрещены (WEBHOOK_ALLOW_PRIVATE=1 разрешает их).",
        "err_webhook_resolve": "Имя хоста не удалось разрешить.",
        "err_webhook_events": "Ожидался непустой список событий: {names}.",
        "err_webhook_unknown_event": "Неизвестное событие «{name}»; допустимы: {names}.",
        "err_webhook_description": "Ожидалась строка не длиннее 200 символов.",
    },
    "en": {
        "request_taken": "Request taken by admin {name}",
        "request_completed": "Request completed by admin {name}",
        "request_closed": "Request closed by director {name}",
        "request_auto_closed": "Request closed automatically: no new messages for {days} days",
        "request_reopened": "Request reopened by {name}",
        "request_reassigned": "Request reassigned to admin {name}",
        "request_status_changed": "Request status changed to \"{status}\" by {name}",
        "chat_joined": "{name} joined the chat",
        "chat_left": "{name} left the chat",
        "attachment_added": "Attachment: {name}",
        "support_name": "Support",
        "err_already_assigned": "The request is already assigned to another admin",
        "err_already_assigned_to": "The request has already been taken by {name}",
        "err_complete_foreign": "You cannot complete someone else's request",
        "err_not_in_progress": "Only a request in progress can be completed (now: {status})",
        "err_cannot_take_status": "Only an open request can be taken (now: {status})",
        "err_close_status": "Only a completed request can be closed (now: {status})",
        "err_reopen_status": "Only a completed or closed request can be reopened",
        "err_director_only": "Only a director can do this",
        "err_staff_only": "Only admins can do this",
        "err_not_found": "Not found.",
        "err_no_permission": "You do not have permission to perform this action.",
        "err_manage_request": "You cannot manage this request",
        "err_not_participant": "You are not a participant of this chat",
        "err_chat_owner_only": "Only the chat's creator or a director can rename, retype or close it",
        "err_comm_sender_only": "Only the sender can change this communication",
        "err_comm_staff_only": "Participants must be active admins or directors.",
        "err_banned": "Your account is blocked: new requests and messages are not accepted.",
        "err_not_customer": "Only customers can be banned.",
        "err_self_lockout": "You cannot deactivate your own account or change your own role.",
        "chat_removed": "{name} was removed from the chat",
        "err_attach_new_message": "A file cannot be added to a message already sent; send it as a new message.",
        "err_bad_assignee": "Only an admin or a director can be assigned",
        "err_move_not_allowed": "A request cannot move from \"{current}\" to \"{target}\". Allowed from here: {allowed}",
        "err_move_none": "none (use Take or Reassign)",
        "err_closed": "The request is closed; no new messages are accepted",
        "err_edit_not_own": "You can edit and delete only your own messages.",
        "err_edit_window": "A message can be edited or deleted within {hours} h of sending; that time has passed.",
        "err_edit_system": "System messages cannot be edited.",
        "err_rating_range": "A rating is a whole number from 1 to 5.",
        "err_rating_status": "Only a completed request can be rated (until it is closed).",
        "err_canned_not_found": "Canned response “{shortcut}” not found.",
        "err_canned_shortcut": "A shortcut is Latin letters, digits, _ and -, up to 32 characters.",
        "err_canned_taken": "A canned response with this shortcut and language exists already.",
        "err_canned_owner": "Only its author may change a canned response (a shared one, a director too).",
        "canned_customer_fallback": "customer",
        "err_blank": "This field may not be blank.",
        "err_not_string": "Not a valid string.",
        "err_too_long": "Ensure this field has no more than {max} {chars}.",
        "err_tags_type": "Expected a list of strings.",
        "err_tags_count": "No more than {max} tags.",
        "err_tag_blank": "A tag may not be blank.",
        "err_tag_long": "A tag may have no more than {max} {chars}.",
        "err_body_too_large": "The request body is larger than {max} bytes.",
        "err_required_field": "This field is required.",
        "err_bool": "Must be a valid boolean.",
        "err_webhook_url": "Enter a valid URL.",
        "err_webhook_scheme": "Only http:// and https:// URLs are allowed.",
        "err_webhook_private": "Addresses on loopback or private networks are refused (WEBHOOK_ALLOW_PRIVATE=1 allows them).",
        "err_webhook_resolve": "The host name does not resolve.",
        "err_webhook_events": "Expected a non-empty list of events: {names}.",
        "err_webhook_unknown_event": "Unknown event \"{name}\"; allowed: {names}.",
        "err_webhook_description": "Expected a string of at most 200 characters.",
    },
}

STATUS_LABELS = {
    "ru": {"open": "Открыт", "in_progress": "В работе", "completed": "Выполнен", "closed": "Закрыт"},
    "en": {"open": "Open", "in_progress": "In progress", "completed": "Completed", "closed": "Closed"},
}
PRIORITY_LABELS = {
    "ru": {"low": "Низкий", "medium": "Средний", "high": "Высокий", "urgent": "Срочный"},
    "en": {"low": "Low", "medium": "Medium", "high": "High", "urgent": "Urgent"},
}
CATEGORY_LABELS = {
    "ru": {
        "technical": "Техническая",
        "billing": "Биллинг",
        "account": "Аккаунт",
        "order": "Заказ",
        "general": "Общая",
    },
    "en": {
        "technical": "Technical",
        "billing": "Billing",
        "account": "Account",
        "order": "Order",
        "general": "General",
    },
}


def lang_of(language: str | None) -> str:
    return language if language in TEXTS else DEFAULT_LANGUAGE


def t(key: str, language: str | None = None, **kwargs: Any) -> str:
    """The text `key` in `language` (falls back to Russian), formatted with kwargs."""
    table = TEXTS[lang_of(language)]
    template = table.get(key) or TEXTS[DEFAULT_LANGUAGE][key]
    return template.format(**kwargs)
