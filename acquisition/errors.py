"""Domain errors with a stable code slug; the web edge turns them into problem+json."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field; `field` is a dotted path such as `links.3.channels`."""

    field: str
    message: str


class AcquisitionError(Exception):
    """Base of every error a user can cause; `status` is the HTTP status the edge answers with."""

    status = 400
    code = "bad-request"
    title = "Bad request"

    def __init__(
        self, message: str, field: str | None = None, errors: list[FieldError] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if errors is None:
            errors = [FieldError(field, message)] if field is not None else []
        self.errors = errors


class Invalid(AcquisitionError):
    status = 422
    code = "invalid"
    title = "Invalid input"


class Malformed(AcquisitionError):
    """The body could not be read at all (not JSON, wrong content type, truncated)."""

    status = 400
    code = "malformed"
    title = "Malformed request"


class NotFound(AcquisitionError):
    status = 404
    code = "not-found"
    title = "Not found"


class Conflict(AcquisitionError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Unauthorized(AcquisitionError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(AcquisitionError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Unavailable(AcquisitionError):
    """The store cannot take the write now; callers should retry (webhook platforms do)."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"
