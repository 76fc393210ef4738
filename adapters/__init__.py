"""Connectors that let an agency's existing document system join the gateway unchanged.

An adapter owns one way an agency system hands letters over (a watched folder, ...): it finds
what the system has put out, records what became of it, and hands the system what the gateway
delivered. The connector (``adapters.connector``) does the rest the same way for every adapter,
through the gateway's public HTTP API only: submit, fetch, and acknowledge once the system has
the copy. Adapters are registered under the entry-point group ``gateway.adapters``.
"""

from adapters.base import AgencyAdapter, Outgoing, adapter_class, registered
from adapters.connector import Connector, Pass

__all__ = ["AgencyAdapter", "Connector", "Outgoing", "Pass", "adapter_class", "registered"]
