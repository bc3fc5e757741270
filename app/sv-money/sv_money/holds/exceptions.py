"""Errors of holds, as problem+json."""

from edgelib.problems import Conflict, NotFound, Unprocessable


class HoldNotFound(NotFound):
    type_slug, title = "hold-not-found", "No such hold"


class HoldClosed(Conflict):
    type_slug, title = "hold-closed", "The hold is no longer open"


class HoldExpired(Conflict):
    type_slug, title = "hold-expired", "The hold has expired"


class CaptureTooLarge(Unprocessable):
    type_slug, title = "capture-too-large", "Capture larger than the hold"


class HoldTooLong(Unprocessable):
    type_slug, title = "hold-too-long", "Hold lifetime too long"
