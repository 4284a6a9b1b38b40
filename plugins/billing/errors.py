"""The one refusal type of the billing rules: views show its message and answer its status."""
from __future__ import annotations


class BillingError(Exception):
    """A refusal with a message fit to show the user; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message = message
        self.status = status
