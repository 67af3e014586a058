"""A product's real look, why two products go together, and what makes a pairing
incoherent: pure functions over product records."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bijou.catalog.schema import Product
from bijou.retrieval.compatibility import CompatibilityModel, NotePair, note_pairs, split_products
from bijou.retrieval.look import image_colours, look_of
from bijou.retrieval.reasons import (
    Reason,
    for_children,
    holds,
    in_price_band,
    near_substitute,
    reasons,
)


def product(pid: str, title: str, article: str, colour: str = "", **fields: object) -> Product:
    base: dict[str, object] = {
        "id": pid, "title": title, "article": article, "colour": colour,
        "price": 1000.0, "list_price": 1000.0, "gender": "Women",
    }  # fmt: skip
    return Product.model_validate(base | fields)


@pytest.mark.parametrize(
    ("title", "colour", "attributes", "metal", "colours", "conflict"),
    [
        # The title names the metal the piece shows; the colour field says White.
        ("Lencia Sterling Silver Pendant", "White", {"Base Metal": "Silver"}, "Silver", (), True),
        # Gold-tone earrings with rust stones: both are seen.
        ("Royal Diadem Rust Earrings", "Gold", {}, "Gold", ("Rust",), False),
        # A watch named for its dial and listed by its strap.
        ("Carrera Men White Dial Watch", "Brown", {}, None, ("White", "Brown"), True),
        ("Titan Rose Gold Watch", "Pink", {}, "Rose", ("Pink",), False),
        ("Plain Bangle", "", {"Base Metal": "Stainless Steel"}, "Steel", (), False),
        ("Silk Saree", "Maroon", {}, None, ("Maroon",), False),
        # A shade of the colour the title names is the same look.
        ("Flying Machine Women OS Blue Tops", "Navy Blue", {}, None, ("Blue", "Navy Blue"), False),
    ],
)
def test_the_look_reads_every_record_field(
    title: str, colour: str, attributes: dict, metal: str | None, colours: tuple, conflict: bool
) -> None:
    look = look_of(product("x", title, "Earrings", colour, attributes=attributes))
    assert (look.metal, look.colours) == (metal, colours)
    assert bool(look.conflicts) is conflict


def test_jewellery_is_named_by_its_metal_and_a_bag_by_its_colour() -> None:
    earrings = look_of(product("e", "Royal Diadem Rust Earrings", "Earrings", "Gold"))
    assert earrings.main("Earrings") == "Gold"
    bag = look_of(product("b", "Rocia Women Gold Coloured Black Clutch", "Clutches", "Black"))
    assert bag.main("Clutches") == "Black"


def test_the_photo_settles_a_record_without_colour_and_flags_a_contradiction() -> None:
    red = Image.new("RGB", (60, 80), (255, 255, 255))
    red.paste((190, 30, 40), (10, 10, 50, 70))
    assert image_colours(red)[0] == "Red"
    assert look_of(product("n", "Plain Scarf", "Scarves"), image_colours(red)).colours == ("Red",)
    contradicted = look_of(product("b", "Blue Scarf", "Scarves", "Blue"), ("Yellow",))
    assert any("image" in c for c in contradicted.conflicts)
    blank = image_colours(Image.new("RGB", (60, 80), "white"))
    assert blank == () and look_of(product("w", "Plain Scarf", "Scarves"), blank).colours == ()


def test_a_colour_only_the_field_claims_is_matched_but_never_said() -> None:
    dress = product("d", "Latin Quarters Women Black Printed Dress", "Dresses", "Olive")
    look = look_of(dress)
    assert "Olive" in look.tones and look.disputed == ("Olive",)
    assert look.sure_tones == ("Black",)
    olive_bag = product("o", "Olive Sling Bag", "Handbags", "Olive")
    assert Reason("tone", ("Olive",)) not in reasons(olive_bag, dress)
    # An attribute that agrees with the field settles it: the strap is brown.
    watch = product("w", "Carrera Men White Dial Watch", "Watches", "Brown",
                    attributes={"Strap Colour": "Brown"})  # fmt: skip
    assert look_of(watch).disputed == () and "Brown" in look_of(watch).sure_tones


# --- reasons ------------------------------------------------------------------------------
GOLD_NECKLACE = product("n1", "Gold Necklace", "Necklace and Chains", "Gold", usage="Ethnic",
                        style_note="Wear it with a pair of earrings.")  # fmt: skip
GOLD_EARRINGS = product("e1", "Gold Jhumkas", "Earrings", "Gold", usage="Ethnic")
BLACK_CLUTCH = product("c1", "Black Clutch", "Clutches", "Black", usage="Party")
MAROON_SAREE = product("s1", "Silk Saree", "Sarees", "Maroon", usage="Ethnic")
PENDANT = product("p1", "Silver Pendant", "Pendant", "Silver")
CHAIN = product("h1", "Silver Chain", "Necklace and Chains", "Silver")
WATCH = product("w1", "Steel Watch", "Watches", "Steel", price=4000, list_price=4000)
BANGLE = product("b1", "Steel Bangle", "Bangle", "Steel")
HANDBAG = product("hb", "Black Handbag", "Handbags", "Black")


def test_reasons_are_specific_and_true() -> None:
    found = reasons(GOLD_NECKLACE, GOLD_EARRINGS)
    assert Reason("completes", ("set",)) in found  # earrings and a necklace make a set
    assert Reason("note", ("Earrings",)) in found  # the note names earrings
    assert Reason("tone", ("Gold",)) in found
    assert Reason("occasion", ("Ethnic",)) in found
    assert Reason("contrast", ("Gold", "Maroon")) in reasons(MAROON_SAREE, GOLD_EARRINGS)
    assert Reason("contrast", ("Black", "Gold")) in reasons(GOLD_EARRINGS, BLACK_CLUTCH)
    beige = product("bg", "Beige Handbag", "Handbags", "Beige")
    assert reasons(PENDANT, beige) == (Reason("neutral", ("Beige",)),)
    assert Reason("completes", ("chain",)) in reasons(PENDANT, CHAIN)
    # Beside a chain, the pendant is the piece the chain is for: the reason says so.
    assert Reason("completes", ("chain", "reverse")) in reasons(CHAIN, PENDANT)
    for reason in found:
        assert holds(reason, GOLD_NECKLACE, GOLD_EARRINGS)
    assert not holds(Reason("tone", ("Silver",)), GOLD_NECKLACE, GOLD_EARRINGS)


def test_a_childs_piece_is_known_by_its_title_whatever_its_gender_field() -> None:
    listed_women = product("k", "Palm Tree Kids Girls Red Saloppette Set", "Dresses", "Red")
    assert for_children(listed_women)
    assert not for_children(GOLD_EARRINGS)
    assert for_children(product("g", "Pink Frock", "Dresses", gender="Girls"))


def test_near_substitutes_and_places() -> None:
    assert near_substitute(HANDBAG, BLACK_CLUTCH)  # a second bag beside a bag
    assert not near_substitute(HANDBAG, BLACK_CLUTCH, asked=True)  # unless asked for
    assert near_substitute(WATCH, BANGLE)  # both on the wrist, nothing completes them
    assert not near_substitute(PENDANT, CHAIN)  # the chain takes the pendant
    assert not near_substitute(GOLD_NECKLACE, GOLD_EARRINGS)
    twin = GOLD_EARRINGS.model_copy(update={"id": "e2"})
    assert near_substitute(GOLD_EARRINGS, twin)
    assert not near_substitute(GOLD_EARRINGS, twin, asked=True)  # "more earrings like these"


def test_a_suggestion_is_priced_in_proportion() -> None:
    cheap = product("d", "Deo", "Deodorant", price=150, list_price=150)
    assert not in_price_band(WATCH.model_copy(update={"price": 12000}), cheap)
    assert in_price_band(WATCH, product("wl", "Wallet", "Wallets", price=1500, list_price=1500))
    pricey = product("x", "Bag", "Handbags", price=9000, list_price=9000)
    assert not in_price_band(GOLD_EARRINGS, pricey)


# --- the compatibility model ----------------------------------------------------------------
def test_note_pairs_name_the_other_article_and_its_colour() -> None:
    pendant = PENDANT.model_copy(update={"style_note": "Team it with a black dress and a watch."})
    pairs = note_pairs([pendant])
    assert NotePair("p1", "Dresses", ("Black",)) in pairs
    assert NotePair("p1", "Watches", ()) in pairs


def test_split_keeps_a_note_in_one_part() -> None:
    same = [product(str(i), "Ring", "Ring", style_note="One shared note.") for i in range(20)]
    parts = set(split_products(same, 13).values())
    assert len(parts) == 1


def test_compatibility_model_scores_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(0)
    model = CompatibilityModel(
        rng.normal(size=(64, 8)).astype(np.float32),
        np.ones((1, 64), np.float32),
        {("Earrings", "Necklace and Chains"): 0},
        "test",
    )
    a, b = rng.normal(size=8).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    scores = model.score(a, "Earrings", b, "Necklace and Chains")
    assert scores.shape == (3,) and np.all(np.abs(scores) <= 1.0001)
    assert model.score(a, "Earrings", a[None], "Necklace and Chains")[0] == pytest.approx(1, 1e-3)
    path = tmp_path / "c.npz"
    model.save(path)
    again = CompatibilityModel.load(path)
    assert again.pair_index == model.pair_index and again.version == "test"
    assert np.allclose(again.score(a, "Earrings", b, "Necklace and Chains"), scores, atol=1e-2)
