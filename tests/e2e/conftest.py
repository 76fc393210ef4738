"""The running gateway that end-to-end tests talk to (see tests/gatewaystack.py)."""

from gatewaystack import stack, webhook

__all__ = ["stack", "webhook"]
