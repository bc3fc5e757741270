"""Errors of the users domain, as problem+json."""

from edgelib.problems import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable


class UsernameTaken(Conflict):
    type_slug, title = "username-taken", "Username taken"


class UsernameReserved(Conflict):
    type_slug, title = "username-reserved", "Username reserved"


class NotBootstrapCaller(Forbidden):
    type_slug, title = "caller-not-allowed", "This service may not call this endpoint"


class UserNotFound(NotFound):
    type_slug, title = "user-not-found", "No such user"


class WrongRegion(Unprocessable):
    type_slug, title = "wrong-region", "This account belongs to another region"


class WeakPassword(Unprocessable):
    type_slug, title = "weak-password", "Password refused"


class WrongPassword(Forbidden):
    type_slug, title = "wrong-password", "Current password is wrong"


class InvalidCredentials(Unauthorized):
    type_slug, title = "invalid-credentials", "Invalid username or password"
