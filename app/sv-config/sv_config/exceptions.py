"""The errors sv-config's callers see, each a problem+json document with a stable type."""

from edgelib.problems import Problem


class NamespaceNotFound(Problem):
    status_code, type_slug, title = 404, "config-namespace-not-found", "Namespace not found"


class NamespaceExists(Problem):
    status_code, type_slug, title = 409, "config-namespace-exists", "Namespace already exists"


class ItemNotFound(Problem):
    status_code, type_slug, title = 404, "config-item-not-found", "Item not found"


class InvalidItem(Problem):
    """A key, type or value the namespace cannot hold; nothing was changed."""

    status_code, type_slug, title = 422, "config-invalid-item", "Invalid configuration item"


class TooManyItems(Problem):
    status_code, type_slug, title = 422, "config-too-many-items", "Too many items"


class InvalidSchema(Problem):
    """The document given as a namespace's JSON Schema is not a usable schema."""

    status_code, type_slug, title = 422, "config-invalid-schema", "Invalid JSON Schema"


class SchemaViolation(Problem):
    """A release (or a new schema) would leave content the schema refuses; nothing changed."""

    status_code, type_slug, title = 422, "config-schema-violation", "Schema violation"


class ReleaseTooLarge(Problem):
    status_code, type_slug, title = 422, "config-release-too-large", "Release too large"


class ReleaseNotFound(Problem):
    status_code, type_slug, title = 404, "config-release-not-found", "Release not found"


class NothingToPublish(Problem):
    """The draft equals the release that runs; publishing would change nothing."""

    status_code, type_slug, title = 409, "config-nothing-to-publish", "Nothing to publish"


class GrayInProgress(Problem):
    """Main-line releases wait until the running gray release is promoted or aborted."""

    status_code, type_slug, title = 409, "config-gray-in-progress", "Gray release in progress"


class NoGrayRelease(Problem):
    status_code, type_slug, title = 404, "config-no-gray-release", "No gray release"


class InvalidTargets(Problem):
    status_code, type_slug, title = 422, "config-invalid-targets", "Invalid gray targets"


class NotRollbackable(Problem):
    """Only releases that ran on the main line can be restored."""

    status_code, type_slug, title = 409, "config-not-rollbackable", "Release cannot be restored"


class ConcurrentChange(Problem):
    """Another change to the namespace won the race; retry on the new state."""

    status_code, type_slug, title = 409, "config-concurrent-change", "Concurrent change"
