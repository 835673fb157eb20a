"""Pydantic models of every REST request and response body, one module per resource.

The routes validate request bodies with them (api.schemas.base.validated) and the OpenAPI
document is generated from them (api.routes.docs), so what the document shows is what the
routes accept and return; tests/test_api_contract.py checks the responses against them.
Enums come from db.models, limits from core.limits.
"""
