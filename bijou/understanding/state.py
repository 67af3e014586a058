"""What the agent remembers: a session's dialog state and a returning shopper's preferences.

Both are pydantic models because they are persisted (SQLite, JSON) between turns and
processes. Hard constraints live here, set by the deterministic turn parser; the LLM never
writes to them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bijou.retrieval.query import QueryFilters


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Preferences(_Model):
    """What a returning shopper said about taste, kept across sessions."""

    colours: list[str] = Field(default_factory=list)
    exclude_colours: list[str] = Field(default_factory=list)
    exclude_brands: list[str] = Field(default_factory=list)
    # "Don't show me that again": never recommended to this shopper again.
    blocked_ids: list[str] = Field(default_factory=list)
    language: str | None = None


class DialogState(_Model):
    """One conversation's constraints and references, carried from turn to turn."""

    language: str = "en"
    script: str = "hans"  # of a Chinese conversation: replies in traditional for "hant"
    articles: list[str] = Field(default_factory=list)
    exclude_articles: list[str] = Field(default_factory=list)
    # The categories are the shop's own lead (jewellery first), not named by the shopper.
    led: bool = False
    colours: list[str] = Field(default_factory=list)
    genders: list[str] = Field(default_factory=list)
    usages: list[str] = Field(default_factory=list)
    brands: list[str] = Field(default_factory=list)
    exclude_colours: list[str] = Field(default_factory=list)
    exclude_brands: list[str] = Field(default_factory=list)
    blocked_ids: list[str] = Field(default_factory=list)
    min_price: float | None = None
    max_price: float | None = None
    # "Around 2000": the amount said, searched as the range above.
    budget_around: float | None = None
    # Who it is for ("wife", "colleague"), what for ("birthday"), a style named outright
    # ("Ethnic", "Western"): the vocabularies' relations, events and styles.
    recipient: str | None = None
    occasion: str | None = None
    style: str | None = None
    # Descriptive words the filters do not capture ("minimalist", "floral"): searched softly.
    soft: str = ""
    # The last recommendations in the order shown, so "the second one" can be resolved.
    shown: list[str] = Field(default_factory=list)
    # The product the conversation is about ("what goes with it?").
    focus: str | None = None
    # The last set proposed (a look or a bundle), for "write a caption for this set".
    bundle: list[str] = Field(default_factory=list)

    def filters(self) -> QueryFilters:
        return QueryFilters(
            articles=tuple(self.articles),
            colours=tuple(self.colours),
            genders=tuple(self.genders),
            usages=tuple(self.usages),
            brands=tuple(self.brands),
            exclude_colours=tuple(self.exclude_colours),
            exclude_brands=tuple(self.exclude_brands),
            exclude_articles=tuple(self.exclude_articles),
            min_price=self.min_price,
            max_price=self.max_price,
        )

    @classmethod
    def for_shopper(cls, preferences: Preferences) -> DialogState:
        """A new session starts from what the shopper told us before."""
        return cls(
            language=preferences.language or "en",
            colours=list(preferences.colours),
            exclude_colours=list(preferences.exclude_colours),
            exclude_brands=list(preferences.exclude_brands),
            blocked_ids=list(preferences.blocked_ids),
        )
