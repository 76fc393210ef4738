"""The running gateway that end-to-end tests talk to (see tests/gatewaystack.py), and the check
of every answer it gives against the OpenAPI document (see tests/apicheck.py)."""

from apicheck import api_document, api_responses
from gatewaystack import embedded, province, stack, webhook

__all__ = ["api_document", "api_responses", "embedded", "province", "stack", "webhook"]
