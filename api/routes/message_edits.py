"""PATCH and DELETE on one message of a request's thread (core.message_edits):

- `/api/admin/customer-requests/<id>/messages/<message_id>/` for staff;
- `/api/customer/requests/<id>/messages/<message_id>/` for the customer of their own request.

Only one's own message, within MESSAGE_EDIT_WINDOW_HOURS: someone else's message, a system
message or one past the window answers 403 with the reason in `detail`. PATCH takes
`{"content": "..."}` and answers the message's JSON (the customer route: the customer-facing
`customer_message_data`, staff by display name only, like the other customer routes); DELETE
answers 204.
"""

from __future__ import annotations

from sanic import Request
from sanic.response import empty

from api.blueprint import Blueprint
from api.http import authenticate, authenticate_staff, guard_ids, json
from api.routes.customer import own_request
from api.schemas.base import validated
from api.schemas.requests import MessageEdit
from core import message_edits
from core.serializers import customer_message_data, message_data


def _content(request: Request) -> str:
    return validated(request, MessageEdit).content


async def staff_edit(request: Request, request_id: int, message_id: int):
    actor = await authenticate_staff(request)
    msg = await message_edits.edit_message(actor, request_id, message_id, _content(request))
    return json(message_data(msg))


async def staff_delete(request: Request, request_id: int, message_id: int):
    actor = await authenticate_staff(request)
    await message_edits.delete_message(actor, request_id, message_id)
    return empty(status=204)


async def customer_edit(request: Request, request_id: int, message_id: int):
    actor = await authenticate(request)
    await own_request(actor, request_id)
    msg = await message_edits.edit_message(actor, request_id, message_id, _content(request))
    return json(customer_message_data(msg))


async def customer_delete(request: Request, request_id: int, message_id: int):
    actor = await authenticate(request)
    await own_request(actor, request_id)
    await message_edits.delete_message(actor, request_id, message_id)
    return empty(status=204)


def get_blueprint() -> Blueprint:
    staff = Blueprint("message_edits_staff", url_prefix="/api/admin/customer-requests")
    customer = Blueprint("message_edits_customer", url_prefix="/api/customer/requests")
    path = "/<request_id:int>/messages/<message_id:int>/"
    for bp, edit, delete in ((staff, staff_edit, staff_delete), (customer, customer_edit, customer_delete)):
        guard_ids(bp)
        bp.add_route(edit, path, methods=["PATCH"], name=f"{bp.name}_edit")
        bp.add_route(delete, path, methods=["DELETE"], name=f"{bp.name}_delete")
    return Blueprint.group(staff, customer)
