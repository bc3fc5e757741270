"""The errors sv-log's callers see, each a problem+json document."""

from edgelib.problems import Problem


class MalformedBatch(Problem):
    """The batch is not gzip/JSON of the expected shape; nothing of it is stored."""

    status_code, type_slug, title = 400, "malformed-batch", "Malformed log batch"


class InvalidRecords(Problem):
    """Some records do not match the schema; nothing of the batch is stored."""

    status_code, type_slug, title = 422, "invalid-log-records", "Invalid log records"


class BatchTooLarge(Problem):
    """The batch is over a size limit; nothing of it is stored."""

    status_code, type_slug, title = 413, "log-batch-too-large", "Log batch too large"


class UnsupportedBatchEncoding(Problem):
    status_code, type_slug, title = 415, "unsupported-log-encoding", "Unsupported encoding"


class InvalidCursor(Problem):
    status_code, type_slug, title = 400, "invalid-cursor", "Invalid cursor"


class InvalidTimeRange(Problem):
    status_code, type_slug, title = 400, "invalid-time-range", "Invalid time range"


class StoreUnavailable(Problem):
    """The log store did not answer; senders retry later."""

    status_code, type_slug, title = 503, "log-store-unavailable", "Log store unavailable"


class BatchInProgress(Problem):
    """An earlier send of the same batch (same idempotency key) is not settled yet."""

    status_code, type_slug, title = 503, "log-batch-in-progress", "Log batch in progress"
