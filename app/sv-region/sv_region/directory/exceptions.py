"""Errors of the directory, as problem+json."""

from edgelib.problems import Conflict, NotFound, ServiceUnavailable, Unprocessable


class UsernameTaken(Conflict):
    type_slug, title = "username-taken", "Username taken"


class UnknownRegion(Unprocessable):
    type_slug, title = "unknown-region", "Unknown region"


class NoActiveRegion(ServiceUnavailable):
    type_slug, title = "no-active-region", "No region accepts new users"


class EntryNotFound(NotFound):
    type_slug, title = "directory-entry-not-found", "No such user in the directory"


class EntryAlreadyActive(Conflict):
    type_slug, title = "directory-entry-active", "Directory entry is active"
