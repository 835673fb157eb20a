"""Placeholder: filled in by the REST routes work."""

from sanic import Blueprint


def get_blueprint() -> Blueprint:
    return Blueprint("customer")
