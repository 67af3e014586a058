"""The product model every other module reads."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The colour a piece is called by when its record names only its metal.
METAL_TONES = {"silver": "Silver", "gold": "Gold", "stainless steel": "Steel", "steel": "Steel"}


class Product(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    brand: str = ""
    gender: str = "Unisex"
    master: str = ""
    sub: str = ""
    article: str = Field(min_length=1)
    colour: str = ""
    season: str = ""
    year: int | None = None
    usage: str = ""
    # What the shopper pays (the discounted price when there is one), in the shop's currency.
    price: float = Field(ge=0)
    list_price: float = Field(ge=0)
    attributes: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    style_note: str = ""
    materials_care: str = ""
    size_fit: str = ""
    # Relative to the catalog's image store (a folder or a zip), or absolute.
    image: str | None = None
    # A short product video (MP4 or WebM), found the same way as the image.
    video: str | None = None

    @field_validator("title", "article")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @property
    def fingerprint(self) -> str:
        """Changes whenever anything the index stores about the product changes."""
        # Unset optional fields are left out, so adding one to the schema re-encodes nothing.
        return hashlib.sha256(self.model_dump_json(exclude_none=True).encode()).hexdigest()[:16]

    @property
    def metal(self) -> str:
        return self.attributes.get("Base Metal", "")

    @property
    def tones(self) -> tuple[str, ...]:
        """The colours a shopper may call it by: its own and its metal's ("silver earrings")."""
        found = {self.colour} if self.colour else set()
        if tone := METAL_TONES.get(self.metal.lower()):
            found.add(tone)
        return tuple(sorted(found))

    def document(self) -> str:
        """The text the encoders and BM25 see: the facts a shopper searches by, first."""
        facts = [self.title, self.article, self.colour, self.gender, self.usage, self.brand]
        if self.metal:
            facts.append(self.metal)
        facts += [f"{k} {v}" for k, v in self.attributes.items() if k != "Base Metal"]
        head = ". ".join(f for f in facts if f)
        body = " ".join(t for t in (self.style_note, self.description) if t)
        return f"{head}. {body}".strip() if body else head

    def caption(self) -> str:
        """Short text aligned with the product image when training the image encoder."""
        return ". ".join(f for f in (self.title, self.article, self.colour) if f)
