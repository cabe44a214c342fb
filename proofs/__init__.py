"""The supplement as code: the mathematics of the claims and their checks.

Modules named ``section*`` register checks (``verify.checks.check``) for the
claims of the corresponding part of the supplement; the catalog of every claim
is ``catalog.toml``.
"""
