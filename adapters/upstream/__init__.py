"""Upstream links: the gateway as a client of the national axis, or of another province's
gateway, which speak the axis's REST protocol (docs/federation.md).

``links`` reads the configured links and routes a unit code to one (pure); ``client`` speaks
the protocol as a connected system; ``relay`` sends the copies queued for a link with
``sendEdoc`` and polls the link for what it holds for us."""
