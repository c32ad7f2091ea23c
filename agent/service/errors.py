"""Errors of the service layer that say which field was wrong (faces report it: `param`)."""
from __future__ import annotations

from stores.errors import InputError


class InvalidField(InputError):
    """A request field is wrong: `param` names it (`as_of`, `documents[3].title`), `code` is a
    short machine-readable kind for the API (`invalid_document`, ...)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param, self.code = param, code


class TooLarge(InvalidField):
    """A document or request over a configured size limit (HTTP 413)."""
