"""SynthPEDES attributes: the described attribute space (keys, values, colours, per-gender odds), sampling of
identities, and the hard siblings (colour swap, one changed attribute)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

COLORS: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32),
    "white": (236, 236, 230),
    "grey": (128, 128, 128),
    "red": (200, 35, 40),
    "blue": (45, 90, 210),
    "navy": (25, 32, 95),
    "green": (45, 140, 65),
    "yellow": (232, 212, 45),
    "orange": (240, 135, 35),
    "pink": (236, 135, 175),
    "purple": (112, 55, 155),
    "brown": (112, 72, 42),
}
HAIR_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (22, 20, 20),
    "brown": (95, 60, 35),
    "blonde": (215, 180, 105),
    "grey": (160, 160, 160),
}
SKIN_TONES = ((242, 208, 182), (226, 182, 142), (192, 142, 102), (125, 84, 58), (86, 58, 42))

# Described attributes, in a fixed order (the order of the oracle's code matrix and of the uniqueness tuple).
ATTRIBUTE_KEYS = (
    "gender",
    "hair_style",
    "hair_color",
    "upper_type",
    "upper_color",
    "upper_pattern",
    "upper_pattern_color",
    "lower_type",
    "lower_color",
    "shoes_type",
    "shoes_color",
    "bag",
    "bag_color",
    "hat",
    "hat_color",
    "glasses",
    "scarf",
    "scarf_color",
    "held",
    "held_color",
)
COLOR_KEYS = tuple(key for key in ATTRIBUTE_KEYS if key.endswith("_color") and key != "hair_color")

# (values, weights for men, weights for women); a weight of 0 forbids the value for that gender
_CHOICES: dict[str, tuple[tuple[Any, ...], tuple[float, ...], tuple[float, ...]]] = {
    "gender": (("man", "woman"), (1, 0), (0, 1)),  # gender is drawn first with equal odds, see _sample_value
    "hair_style": (("short", "long", "ponytail", "bun", "bald"), (70, 8, 5, 2, 15), (22, 38, 22, 14, 4)),
    "upper_type": (
        ("t-shirt", "shirt", "jacket", "coat", "sweater", "vest", "dress"),
        (22, 20, 20, 12, 16, 10, 0),
        (18, 14, 16, 12, 14, 8, 18),
    ),
    "upper_pattern": (("plain", "striped", "checked"), (6, 2, 2), (6, 2, 2)),
    "lower_type": (("trousers", "jeans", "shorts", "skirt", "long skirt"), (40, 40, 20, 0, 0), (25, 25, 15, 20, 15)),
    "shoes_type": (("sneakers", "boots", "sandals", "shoes"), (35, 20, 10, 35), (30, 25, 20, 25)),
    "bag": (("none", "backpack", "shoulder bag", "handbag", "suitcase"), (35, 25, 20, 8, 12), (30, 18, 20, 22, 10)),
    "hat": (("none", "cap", "beanie"), (68, 20, 12), (74, 12, 14)),
    "glasses": ((False, True), (3, 1), (3, 1)),
    "scarf": ((False, True), (85, 15), (80, 20)),
    "held": (("none", "umbrella", "phone"), (75, 12, 13), (75, 12, 13)),
}


def _applicable(key: str, attributes: Mapping[str, Any]) -> bool:
    """Whether an attribute exists for this person (a bald person has no hair colour, a dress has no trousers)."""
    if key == "hair_color":
        return attributes["hair_style"] != "bald"
    if key == "upper_pattern_color":
        return attributes["upper_pattern"] != "plain"
    if key in ("lower_type", "lower_color"):
        return attributes["upper_type"] != "dress"
    if key in ("bag_color", "hat_color"):
        return attributes[key.removesuffix("_color")] != "none"
    if key == "scarf_color":
        return attributes["scarf"]
    if key == "held_color":
        return attributes["held"] == "umbrella"
    return True


def _sample_value(key: str, attributes: Mapping[str, Any], rng: random.Random) -> Any:
    """Draw one attribute given the ones before it in ATTRIBUTE_KEYS (None when it does not apply)."""
    if not _applicable(key, attributes):
        return None
    if key == "gender":
        return rng.choice(("man", "woman"))
    if key == "hair_color":
        return rng.choice(tuple(HAIR_COLORS))
    if key == "upper_pattern_color":  # a second colour that differs from the garment's
        return rng.choice([color for color in COLORS if color != attributes["upper_color"]])
    if key.endswith("_color"):
        return rng.choice(tuple(COLORS))
    values, men, women = _CHOICES[key]
    return rng.choices(values, weights=men if attributes["gender"] == "man" else women)[0]


def sample_attributes(rng: random.Random) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key in ATTRIBUTE_KEYS:
        attributes[key] = _sample_value(key, attributes, rng)
    return attributes


def _refresh_dependents(attributes: dict[str, Any], rng: random.Random) -> None:
    """After one attribute changed, clear what no longer applies and draw what newly applies."""
    for key in ATTRIBUTE_KEYS:
        if not _applicable(key, attributes):
            attributes[key] = None
        elif attributes[key] is None:
            attributes[key] = _sample_value(key, attributes, rng)


# attributes a one-attribute sibling may change; gender and the dress/no-dress choice would change the whole outfit
_MUTABLE_KEYS = tuple(key for key in ATTRIBUTE_KEYS if key not in ("gender", "upper_type"))


def colour_swap_sibling(base: Mapping[str, Any], rng: random.Random) -> dict[str, Any] | None:
    """Swap the colours of two garments: the same bag of words, a different binding."""
    keys = [key for key in COLOR_KEYS if base[key] is not None]
    pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :] if base[a] != base[b]]
    if not pairs:
        return None
    preferred = [pair for pair in pairs if pair == ("upper_color", "lower_color")]
    first, second = preferred[0] if preferred and rng.random() < 0.5 else rng.choice(pairs)
    sibling = dict(base)
    sibling[first], sibling[second] = base[second], base[first]
    if sibling["upper_pattern_color"] is not None and sibling["upper_pattern_color"] == sibling["upper_color"]:
        return None  # a "red and red striped" shirt is not a pattern
    return sibling


def one_attribute_sibling(base: Mapping[str, Any], rng: random.Random) -> dict[str, Any] | None:
    key = rng.choice([key for key in _MUTABLE_KEYS if base[key] is not None])
    sibling = dict(base)
    for _ in range(20):
        sibling[key] = _sample_value(key, sibling, rng)
        if sibling[key] != base[key]:
            _refresh_dependents(sibling, rng)
            return sibling
    return None
