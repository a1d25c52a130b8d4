"""The service's exceptions; each maps to one HTTP status and a clear message."""

from __future__ import annotations


class ServingError(Exception):
    """Base class: `status_code` and a `detail` that is safe to show a client."""

    status_code = 500

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadImageError(ServingError):
    """The bytes are not a decodable PNG or JPEG."""

    status_code = 400


class UnsupportedMediaError(ServingError):
    """The image is of a format other than PNG or JPEG."""

    status_code = 415


class TooLargeError(ServingError):
    """The body, the base64 text or the pixel count is above its limit."""

    status_code = 413


class InvalidInputError(ServingError):
    """Well-formed but unusable input: no ink, bad base64, too many images."""

    status_code = 422


class UnauthorizedError(ServingError):
    """Missing or unknown API key."""

    status_code = 401


class ForbiddenError(ServingError):
    """A known API key without the role the endpoint needs."""

    status_code = 403


class NotFoundError(ServingError):
    """The object asked for does not exist (or no longer does)."""

    status_code = 404


class ConflictError(ServingError):
    """The request contradicts what is already stored."""

    status_code = 409


class StoreUnavailableError(ServingError):
    """The feedback store is off or cannot be reached."""

    status_code = 503


class AdminDisabledError(ServingError):
    """An admin endpoint was called but no ADMIN_TOKEN is configured."""

    status_code = 403


class ReloadFailedError(ServingError):
    """A model reload was refused; the previous model keeps serving."""

    status_code = 409


class RateLimitedError(ServingError):
    """The caller is above its rate limit."""

    status_code = 429


class ModelUnavailableError(ServingError):
    """No model is loaded."""

    status_code = 503


class ModelLoadError(Exception):
    """The model or its card could not be found, read or verified."""
