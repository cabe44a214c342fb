"""verify: runs the checks of the supplement's claims and reports verdicts."""

__version__ = "0.1.0"
