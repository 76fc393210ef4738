"""The running gateway that end-to-end tests talk to (see tests/gatewaystack.py)."""

from gatewaystack import province, stack, webhook

__all__ = ["province", "stack", "webhook"]
