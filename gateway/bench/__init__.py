"""``gateway bench``: the end-to-end benchmark over HTTP and the raw stages beside it."""
