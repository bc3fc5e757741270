"""sv-notice's errors: each one is a problem+json answer with a stable type."""

from __future__ import annotations

from edgelib.problems import Conflict, NotFound, Problem, Unprocessable


class NoticeNotFound(NotFound):
    type_slug, title = "notice-not-found", "Notice not found"


class DeliveryNotFound(NotFound):
    type_slug, title = "delivery-not-found", "Delivery not found"


class UnknownCategory(Unprocessable):
    type_slug, title = "unknown-category", "Unknown category"


class CategoryNotFound(NotFound):
    type_slug, title = "category-not-found", "Category not found"


class TemplateNotFound(NotFound):
    type_slug, title = "template-not-found", "Template not found"


class NoTemplate(Unprocessable):
    type_slug, title = "no-template", "No template for this category"


class InvalidTemplate(Unprocessable):
    type_slug, title = "invalid-template", "Invalid template"


class InvalidVariables(Unprocessable):
    type_slug, title = "invalid-variables", "Template variables do not match"


class RenderFailed(Unprocessable):
    type_slug, title = "render-failed", "The template could not be rendered"


class ChannelNotAllowed(Unprocessable):
    type_slug, title = "channel-not-allowed", "Channel not allowed for this category"


class CriticalCategory(Unprocessable):
    type_slug, title = "critical-category", "Critical notices cannot be turned off"


class InvalidWebhookUrl(Unprocessable):
    type_slug, title = "invalid-webhook-url", "Webhook URL refused"


class InvalidCursor(Problem):
    status_code, type_slug, title = 400, "invalid-cursor", "Invalid cursor"


class NotDeadLettered(Conflict):
    type_slug, title = "not-dead-lettered", "Delivery is not in the dead-letter list"


class WrongRegion(Unprocessable):
    type_slug, title = "wrong-region", "User lives in another region"


class DedupKeyConflict(Conflict):
    type_slug, title = "dedup-key-conflict", "De-duplication key already used"
