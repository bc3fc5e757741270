"""Categories and templates as the admin API reads and writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from sv_notice.schemas import Channel, Text, VariableName
from sv_notice.templates.rendering import VariableType


class CategoryIn(BaseModel):
    critical: bool = Field(False, description="Critical notices ignore user preferences.")
    channels: list[Channel] = Field(min_length=1, description="Channels this category may use.")
    description: Text = Field("", max_length=255)

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[Channel]) -> list[Channel]:
        return list(dict.fromkeys(value))


class CategoryOut(CategoryIn):
    name: str
    updated_at: datetime


class VariableSpec(BaseModel):
    type: VariableType = "string"
    required: bool = True


class TemplateIn(BaseModel):
    title: Text = Field(min_length=1, max_length=2_000, description="Jinja2 source of the title.")
    body: Text = Field(min_length=1, max_length=20_000, description="Jinja2 source of the body.")
    variables: dict[VariableName, VariableSpec] = Field(default_factory=dict, max_length=50)


class TemplateOut(TemplateIn):
    category: str
    locale: str
    version: int
    updated_at: datetime


class PreviewIn(BaseModel):
    variables: dict[str, Any] = Field(default_factory=dict, max_length=50)


class Rendered(BaseModel):
    category: str
    locale: str
    title: str
    body: str
