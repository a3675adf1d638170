"""SynthPEDES: a procedural text-based person retrieval benchmark that needs no download.

The real benchmarks are licence-gated, so tests, CI, the demo and a new user's first run use this generator instead
(design: `shared/design/synthetic.md`). Each identity is a tuple of DESCRIBED attributes (clothes, colours, bag, hair,
...); nuisance factors (view, pose, background, lighting, noise, an occluding pole) vary between images of one
identity and are never described. Families of "hard siblings" differ from their base identity by a colour swap between
two garments (same words, different binding) or by exactly one attribute, and never straddle splits.

The generator writes the raw layout of a real benchmark (`reid_raw.json`, `ICFG-PEDES.json` or `data_captions.json`
plus `imgs/`), so synthetic data is read by the same normaliser as a user's real copy, and a sidecar
`synthpedes_meta.json` with every identity's attributes and, per caption, the attribute keys it mentions. That record
gives an exact floor and ceiling for any model: `random_similarity` and the exact-attribute `oracle_similarity`.

Generation is a pure function of (seed, sizes, layout, generator version): planning (attributes, captions, nuisance
parameters) uses its own seeded streams per family, image and caption, and rendering is a pure function of a planned
image, so the annotation files are byte-identical for one seed and the plan can be rebuilt without rendering.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .benchmarks import (
    BenchmarkFormatError,
    BenchmarkReport,
    OnInvalid,
    get_spec,
    is_prepared,
    load_prepared,
    normalise_benchmark,
)

if TYPE_CHECKING:
    import datasets
    import torch

GENERATOR_VERSION = 1
META_FILE = "synthpedes_meta.json"
SOURCE = "synthpedes"
DEFAULT_NUM_IDS = 1300  # the demo: about 1,000 train / 100 validation / 200 test identities
DEFAULT_SPLIT_FRACTIONS = {"validation": 1 / 13, "test": 2 / 13}  # train takes the rest
DEFAULT_IMAGE_SIZE = (384, 128)  # (height, width), the IVT input size
DEFAULT_IMAGES_PER_ID = (2, 4)  # CUHK-PEDES averages 3.1 images per identity
CAPTIONS_PER_IMAGE = 2

# ---------------------------------------------------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------------------------------------------------

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


def _colour_swap_sibling(base: Mapping[str, Any], rng: random.Random) -> dict[str, Any] | None:
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


def _one_attribute_sibling(base: Mapping[str, Any], rng: random.Random) -> dict[str, Any] | None:
    key = rng.choice([key for key in _MUTABLE_KEYS if base[key] is not None])
    sibling = dict(base)
    for _ in range(20):
        sibling[key] = _sample_value(key, sibling, rng)
        if sibling[key] != base[key]:
            _refresh_dependents(sibling, rng)
            return sibling
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Captions (CUHK-PEDES style grammar)
# ---------------------------------------------------------------------------------------------------------------------

_SUBJECTS = {
    "man": ("a man", "the man", "a young man", "this man", "a male pedestrian", "a guy"),
    "woman": ("a woman", "the woman", "a young woman", "this woman", "a female pedestrian", "a lady"),
}
_WEAR_VERBS = ("is wearing", "wears", "has on", "is dressed in")
_COLOR_WORDS = {"grey": ("grey", "gray"), "navy": ("navy", "dark blue")}
_UPPER_WORDS = {
    "t-shirt": ("t-shirt", "tee", "t shirt"),
    "shirt": ("shirt", "button-up shirt"),
    "jacket": ("jacket",),
    "coat": ("coat", "long coat"),
    "sweater": ("sweater", "jumper"),
    "vest": ("vest", "sleeveless top"),
    "dress": ("dress",),
}
_LOWER_WORDS = {  # plural nouns take no article
    "trousers": ("trousers", "pants"),
    "jeans": ("jeans",),
    "shorts": ("shorts",),
    "skirt": ("a {c} skirt", "a short {c} skirt"),
    "long skirt": ("a long {c} skirt", "a {c} maxi skirt"),
}
_SHOES_WORDS = {"sneakers": ("sneakers", "trainers"), "boots": ("boots",), "sandals": ("sandals",), "shoes": ("shoes",)}
_BAG_CLAUSES = {  # (predicate, with-phrase)
    "backpack": (
        ("is carrying a {c} backpack", "carrying a {c} backpack"),
        ("has a {c} backpack on {his} back", "with a {c} backpack"),
    ),
    "shoulder bag": (
        ("is carrying a {c} shoulder bag", "carrying a {c} shoulder bag"),
        ("has a {c} bag over {his} shoulder", "with a {c} bag over {his} shoulder"),
    ),
    "handbag": (
        ("is holding a {c} handbag", "holding a {c} handbag"),
        ("carries a small {c} handbag", "with a small {c} handbag"),
    ),
    "suitcase": (
        ("is pulling a {c} suitcase", "pulling a {c} suitcase"),
        ("is dragging a {c} suitcase", "dragging a {c} suitcase"),
    ),
    "none": (("is not carrying a bag", "without a bag"), ("carries no bag", "carrying nothing")),
}
_HAIR_PHRASES = {
    "short": ("short {c}hair",),
    "long": ("long {c}hair", "long flowing {c}hair"),
    "ponytail": ("{c}hair tied in a ponytail", "a {c}ponytail"),
    "bun": ("{c}hair in a bun", "{c}hair tied up in a bun"),
}


def _color(name: str, rng: random.Random) -> str:
    return rng.choice(_COLOR_WORDS.get(name, (name,)))


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class _Clause:
    """A described fact, as a predicate ("has long hair") and as a with-phrase ("with long hair")."""

    predicate: str
    with_phrase: str
    keys: tuple[str, ...]


def _upper_phrase(attributes: Mapping[str, Any], rng: random.Random) -> tuple[str, tuple[str, ...]]:
    noun = rng.choice(_UPPER_WORDS[attributes["upper_type"]])
    color = _color(attributes["upper_color"], rng)
    pattern = attributes["upper_pattern"]
    if pattern != "plain" and rng.random() < 0.9:
        second = _color(attributes["upper_pattern_color"], rng)
        forms = {
            "striped": (f"{color} and {second} striped {noun}", f"{color} {noun} with {second} stripes"),
            "checked": (f"{color} and {second} checked {noun}", f"{color} {noun} with a {second} check pattern"),
        }[pattern]
        keys = ("upper_type", "upper_color", "upper_pattern", "upper_pattern_color")
        return _with_article(rng.choice(forms)), keys
    if pattern == "plain" and rng.random() < 0.15:
        return _with_article(f"plain {color} {noun}"), ("upper_type", "upper_color", "upper_pattern")
    return _with_article(f"{color} {noun}"), ("upper_type", "upper_color")


def _lower_phrase(attributes: Mapping[str, Any], rng: random.Random) -> tuple[str, tuple[str, ...]]:
    color = _color(attributes["lower_color"], rng)
    form = rng.choice(_LOWER_WORDS[attributes["lower_type"]])
    phrase = form.format(c=color) if "{c}" in form else f"{color} {form}"
    return phrase, ("lower_type", "lower_color")


def write_caption(attributes: Mapping[str, Any], view: str, rng: random.Random) -> tuple[str, list[str]]:
    """One CUHK-PEDES-style caption of a person seen from `view`, and the attribute keys it mentions.

    Minor attributes are omitted at random and view-hidden ones (glasses and a phone from behind) are not mentioned,
    so captions of one image differ and some siblings stay ambiguous: that ambiguity is the oracle's ceiling.
    """
    man = attributes["gender"] == "man"
    his = "his" if man else "her"
    worn: list[tuple[str, tuple[str, ...]]] = [_upper_phrase(attributes, rng)]
    if attributes["lower_type"] is not None and rng.random() < 0.95:
        worn.append(_lower_phrase(attributes, rng))
    clauses: list[_Clause] = []

    if attributes["shoes_type"] is not None and rng.random() < 0.65:
        shoes = f"{_color(attributes['shoes_color'], rng)} {rng.choice(_SHOES_WORDS[attributes['shoes_type']])}"
        worn.append((shoes, ("shoes_type", "shoes_color")))
    if rng.random() < 0.9:
        style = attributes["hair_style"]
        if style == "bald":
            clauses.append(_Clause("is bald", "with a bald head", ("hair_style",)))
        else:
            named = rng.random() < 0.75
            hair = rng.choice(_HAIR_PHRASES[style]).format(c=f"{attributes['hair_color']} " if named else "")
            keys = ("hair_style", "hair_color") if named else ("hair_style",)
            clauses.append(_Clause(f"has {hair}", f"with {hair}", keys))
    if attributes["hat"] != "none" and rng.random() < 0.85:
        noun = {"cap": rng.choice(("cap", "baseball cap")), "beanie": rng.choice(("beanie", "knitted hat"))}
        hat = _with_article(f"{_color(attributes['hat_color'], rng)} {noun[attributes['hat']]}")
        if rng.random() < 0.5:
            worn.append((hat, ("hat", "hat_color")))
        else:
            clauses.append(_Clause(f"wears {hat} on {his} head", f"with {hat}", ("hat", "hat_color")))
    if attributes["glasses"] and view != "back" and rng.random() < 0.8:
        clauses.append(_Clause(rng.choice(("wears glasses", "has glasses on")), "with glasses", ("glasses",)))
    if attributes["scarf"] and rng.random() < 0.7:
        scarf = _with_article(f"{_color(attributes['scarf_color'], rng)} scarf")
        clauses.append(_Clause(f"has {scarf} around {his} neck", f"with {scarf}", ("scarf", "scarf_color")))
    bag = attributes["bag"]
    if (bag != "none" and (rng.random() < 0.92 or (bag == "backpack" and view == "back"))) or rng.random() < 0.15:
        predicate, with_phrase = rng.choice(_BAG_CLAUSES[bag])
        color = _color(attributes["bag_color"], rng) if bag != "none" else ""
        keys = ("bag",) if bag == "none" else ("bag", "bag_color")
        clauses.append(_Clause(predicate.format(c=color, his=his), with_phrase.format(c=color, his=his), keys))
    held = attributes["held"]
    if held == "umbrella" and rng.random() < 0.8:
        umbrella = _with_article(f"{_color(attributes['held_color'], rng)} umbrella")
        clauses.append(_Clause(f"is holding {umbrella}", f"holding {umbrella}", ("held", "held_color")))
    elif held == "phone" and view != "back" and rng.random() < 0.8:
        predicate = rng.choice((f"is looking at {his} phone", f"holds a phone in {his} hand"))
        clauses.append(_Clause(predicate, "holding a phone", ("held",)))

    rng.shuffle(clauses)
    if len(worn) > 1 and rng.random() < 0.3:
        rng.shuffle(worn)
    mentioned = {"gender"}
    for _, keys in worn:
        mentioned.update(keys)
    for clause in clauses:
        mentioned.update(clause.keys)

    subject = rng.choice(_SUBJECTS[attributes["gender"]])
    if view == "back" and rng.random() < 0.3:
        subject += " walking away from the camera"
    elif clauses and rng.random() < 0.4:
        subject += " " + clauses.pop().with_phrase
    sentences = [f"{subject} {rng.choice(_WEAR_VERBS)} {_join([text for text, _ in worn])}"]
    pronouns = ("he" if man else "she", "the man" if man else "the woman", "this person")
    while clauses:
        group = [clauses.pop() for _ in range(min(len(clauses), rng.choice((1, 2))))]
        sentences.append(f"{rng.choice(pronouns)} {_join([clause.predicate for clause in group])}")
    text = " ".join(sentence[0].upper() + sentence[1:] + "." for sentence in sentences)
    return text, [key for key in ATTRIBUTE_KEYS if key in mentioned]


# ---------------------------------------------------------------------------------------------------------------------
# Plan: identities, families, splits, images, captions (no pixels)
# ---------------------------------------------------------------------------------------------------------------------


def _rng(*parts: Any) -> random.Random:
    """An independent, platform-stable random stream per (seed, purpose, index, ...): str seeds are hashed by sha512."""
    return random.Random(repr(parts))


@dataclass
class SynthConfig:
    """Everything the output depends on; two equal configs give byte-identical annotation files."""

    split_ids: dict[str, int]  # canonical split -> number of identities
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE  # (height, width)
    seed: int = 0
    layout: str = "cuhk-pedes"
    images_per_id: tuple[int, int] = DEFAULT_IMAGES_PER_ID  # inclusive range
    version: int = GENERATOR_VERSION

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "image_size": list(self.image_size), "images_per_id": list(self.images_per_id)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SynthConfig:
        config = dict(data)
        config["image_size"] = tuple(config["image_size"])
        config["images_per_id"] = tuple(config["images_per_id"])
        return cls(**config)

    @property
    def cache_name(self) -> str:
        sizes = "-".join(f"{count}" for count in self.split_ids.values())
        height, width = self.image_size
        low, high = self.images_per_id
        return f"{self.layout}_ids{sizes}_{height}x{width}_img{low}-{high}_seed{self.seed}_v{self.version}"


def make_config(
    *,
    num_ids: int | None = None,
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    layout: str = "cuhk-pedes",
    split_ids: Mapping[str, int] | None = None,
    split_fractions: Mapping[str, float] | None = None,
    images_per_id: Sequence[int] = DEFAULT_IMAGES_PER_ID,
) -> SynthConfig:
    """Resolve sizes: explicit `split_ids`, or `num_ids` shared by `split_fractions` (validation and test; train takes
    the rest; a layout without validation, like ICFG-PEDES, gives those identities to train)."""
    spec = get_spec(layout)
    if split_ids is not None:
        if num_ids is not None or split_fractions is not None:
            raise ValueError("give either split_ids or num_ids/split_fractions, not both")
        unknown = set(split_ids) - set(spec.splits)
        if unknown:
            raise ValueError(f"layout {layout} has splits {spec.splits}, not {sorted(unknown)}")
        resolved = {split: int(split_ids.get(split, 0)) for split in spec.splits}
    else:
        total = DEFAULT_NUM_IDS if num_ids is None else int(num_ids)
        fractions = DEFAULT_SPLIT_FRACTIONS if split_fractions is None else split_fractions
        held_out = [split for split in spec.splits if split != "train"]
        if total < len(spec.splits):
            raise ValueError(f"num_ids must be at least {len(spec.splits)} for layout {layout}, got {total}")
        resolved = {split: max(1, round(total * fractions.get(split, 0.0))) for split in held_out}
        resolved = {"train": total - sum(resolved.values()), **resolved}
    if any(count < 0 for count in resolved.values()) or resolved.get("train", 0) < 1:
        raise ValueError(f"invalid identities per split: {resolved}")
    height, width = (int(value) for value in image_size)
    if height < 32 or width < 16:
        raise ValueError(f"image_size (height, width) must be at least (32, 16), got {(height, width)}")
    low, high = (int(value) for value in images_per_id)
    if not 1 <= low <= high:
        raise ValueError(f"images_per_id must be an inclusive range 1 <= low <= high, got {(low, high)}")
    return SynthConfig(resolved, (height, width), int(seed), layout, (low, high))


@dataclass
class Identity:
    person_id: int  # as written in the annotation file (1-based for the CUHK-PEDES layout)
    split: str
    family: int
    kind: str  # "base", "colour_swap" or "one_attribute"
    attributes: dict[str, Any]
    skin: int  # undescribed: index into SKIN_TONES
    build: float  # undescribed: width factor
    height: float  # undescribed: height factor


@dataclass
class Nuisance:
    """Per-image factors that are never described."""

    view: str
    stride: float  # -1..1, leg and arm phase
    scale: float
    shift: float
    feet: float
    wall: tuple[int, int, int]
    ground: tuple[int, int, int]
    horizon: float
    clutter: list[tuple[float, float, float, float, tuple[int, int, int]]]
    pole: tuple[float, float, tuple[int, int, int]] | None
    gain: tuple[float, float, float]
    blur: float
    noise: float
    noise_offset: tuple[float, float]


@dataclass
class PlannedImage:
    identity: Identity
    index: int
    raw_path: str  # as written in the annotation file (relative to imgs/)
    nuisance: Nuisance
    captions: list[str]
    mentions: list[list[str]] = field(default_factory=list)


@dataclass
class SynthPlan:
    config: SynthConfig
    identities: list[Identity]
    images: list[PlannedImage]


def _sample_family(family: int, seed: int, taken: set[tuple]) -> list[tuple[str, dict[str, Any]]]:
    """A base identity and 0-3 hard siblings, all with described tuples not used before."""
    rng = _rng(seed, "family", family)
    for _ in range(100):
        base = sample_attributes(rng)
        if tuple(base[key] for key in ATTRIBUTE_KEYS) not in taken:
            break
    members = [("base", base)]
    for _ in range(rng.choices((0, 1, 2, 3), weights=(3, 3, 2.5, 1.5))[0]):
        kind = "colour_swap" if rng.random() < 0.4 else "one_attribute"
        for _ in range(20):
            sibling = (_colour_swap_sibling if kind == "colour_swap" else _one_attribute_sibling)(base, rng)
            described = None if sibling is None else tuple(sibling[key] for key in ATTRIBUTE_KEYS)
            if described is not None and described not in taken and all(sibling != m for _, m in members):
                members.append((kind, sibling))
                break
            kind = "one_attribute"  # no usable colour swap: fall back
    for _, attributes in members:
        taken.add(tuple(attributes[key] for key in ATTRIBUTE_KEYS))
    return members


def _muted(rng: random.Random, low: int, high: int) -> tuple[int, int, int]:
    return tuple(rng.randint(low, high) for _ in range(3))  # type: ignore[return-value]


def _sample_nuisance(rng: random.Random) -> Nuisance:
    clutter = [
        (rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.1, 0.35), rng.uniform(0.05, 0.2), _muted(rng, 0, 255))
        for _ in range(rng.choice((0, 1, 1, 2, 3)))
    ]
    pole = (rng.random(), rng.uniform(0.03, 0.07), _muted(rng, 40, 120)) if rng.random() < 0.15 else None
    light = rng.uniform(0.75, 1.2)
    return Nuisance(
        view=rng.choices(("front", "back", "left", "right"), weights=(3, 3, 2, 2))[0],
        stride=rng.uniform(-1.0, 1.0),
        scale=rng.uniform(0.8, 0.93),
        shift=rng.uniform(-0.08, 0.08),
        feet=rng.uniform(0.93, 0.985),
        wall=_muted(rng, 90, 200),
        ground=_muted(rng, 70, 170),
        horizon=rng.uniform(0.55, 0.8),
        clutter=clutter,
        pole=pole,
        gain=tuple(light * rng.uniform(0.95, 1.05) for _ in range(3)),  # type: ignore[arg-type]
        blur=rng.uniform(0.3, 1.0) if rng.random() < 0.3 else 0.0,
        noise=rng.uniform(2.0, 9.0),
        noise_offset=(rng.random(), rng.random()),
    )


def _processed_tokens(caption: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", caption.lower())


def plan(config: SynthConfig) -> SynthPlan:
    """Identities, families, splits, image paths, nuisance factors and captions, without rendering any pixel."""
    spec = get_spec(config.layout)
    captions_per_image = spec.captions_per_record or CAPTIONS_PER_IMAGE
    taken: set[tuple] = set()
    identities: list[Identity] = []
    family = 0
    for split in spec.splits:  # whole families per split, so siblings never straddle splits
        remaining = config.split_ids.get(split, 0)
        while remaining > 0:
            members = _sample_family(family, config.seed, taken)[:remaining]
            for kind, attributes in members:
                traits = _rng(config.seed, "traits", len(identities))
                identities.append(
                    Identity(
                        person_id=len(identities) + spec.id_base,
                        split=split,
                        family=family,
                        kind=kind,
                        attributes=attributes,
                        skin=traits.randrange(len(SKIN_TONES)),
                        build=traits.uniform(0.85, 1.15),
                        height=traits.uniform(0.93, 1.04),
                    )
                )
            remaining -= len(members)
            family += 1

    images = []
    for identity in identities:
        pid = identity.person_id
        count = _rng(config.seed, "count", pid).randint(*config.images_per_id)
        subfolder = spec.synth_subfolders[pid % len(spec.synth_subfolders)] if spec.synth_subfolders else ""
        for index in range(count):
            nuisance = _sample_nuisance(_rng(config.seed, "nuisance", pid, index))
            raw_path = spec.synth_path_template.format(
                subfolder=subfolder, split=spec.raw_split_name(identity.split), pid=pid, index=index
            )
            image = PlannedImage(identity, index, raw_path, nuisance, captions=[])
            for position in range(captions_per_image):
                text, keys = write_caption(
                    identity.attributes, nuisance.view, _rng(config.seed, "caption", pid, index, position)
                )
                image.captions.append(text)
                image.mentions.append(keys)
            images.append(image)
    return SynthPlan(config, identities, images)


def _annotation_records(synth_plan: SynthPlan) -> list[dict[str, Any]]:
    """Records exactly as the real benchmark's file spells them (field names, order, id base)."""
    spec = get_spec(synth_plan.config.layout)
    records = []
    for image in synth_plan.images:
        values = {  # every field any layout has; the spec picks and orders them
            "split": spec.raw_split_name(image.identity.split),
            "captions": image.captions,
            spec.path_field: image.raw_path,
            "processed_tokens": [_processed_tokens(caption) for caption in image.captions],
            "id": image.identity.person_id,
        }
        records.append({name: values[name] for name in spec.record_fields})
    return records


def _meta(synth_plan: SynthPlan) -> dict[str, Any]:
    spec = get_spec(synth_plan.config.layout)
    return {
        "generator": "SynthPEDES",
        "config": synth_plan.config.to_json(),
        "attribute_keys": list(ATTRIBUTE_KEYS),
        "identities": {
            str(identity.person_id): {
                "split": identity.split,
                "family": identity.family,
                "kind": identity.kind,
                "attributes": identity.attributes,
                "undescribed": {"skin": identity.skin, "build": round(identity.build, 4)},
            }
            for identity in synth_plan.identities
        },
        "images": {
            f"{spec.image_dir}/{image.raw_path}": {
                "person_id": image.identity.person_id,
                "view": image.nuisance.view,
                "captions": [{"text": text, "mentions": keys} for text, keys in zip(image.captions, image.mentions)],
            }
            for image in synth_plan.images
        },
    }


# ---------------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------------


def _shade(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(channel * factor))) for channel in color)  # type: ignore[return-value]


class _Figure:
    """Draws one pedestrian with PIL primitives, in units of the person's height (`unit`) from the top of the head."""

    def __init__(self, draw: ImageDraw.ImageDraw, identity: Identity, nuisance: Nuisance, height: int, width: int):
        self.draw = draw
        self.attributes = identity.attributes
        self.view = nuisance.view
        self.stride = nuisance.stride
        self.unit = nuisance.scale * height * identity.height
        self.feet = nuisance.feet * height
        self.top = self.feet - self.unit
        self.center = width * (0.5 + nuisance.shift)
        side = self.view in ("left", "right")
        self.half_width = self.unit * (0.055 if side else 0.085) * identity.build
        self.facing = {"left": -1.0, "right": 1.0}.get(self.view, 0.0)
        self.skin = SKIN_TONES[identity.skin]

    def y(self, fraction: float) -> float:
        return self.top + fraction * self.unit

    def box(self, x0: float, f0: float, x1: float, f1: float, color: tuple[int, int, int]) -> None:
        """A rectangle between horizontal pixel positions x0..x1 and height fractions f0..f1."""
        self.draw.rectangle([min(x0, x1), self.y(f0), max(x0, x1), self.y(f1)], fill=color)

    def color(self, key: str) -> tuple[int, int, int]:
        return COLORS[self.attributes[key]]

    def render(self) -> None:
        attributes = self.attributes
        if attributes["held"] == "umbrella":
            self._umbrella_shaft()
        if attributes["hair_style"] == "long" and self.view != "back":
            self._long_hair_behind()
        if attributes["bag"] == "suitcase":
            self._suitcase()
        if attributes["bag"] == "backpack" and self.view in ("left", "right"):
            self.box(
                self.center - self.facing * self.half_width * 2.2, 0.17, self.center, 0.42, self.color("bag_color")
            )
        self._legs()
        self._torso()
        self._arms()
        self._head()
        if attributes["scarf"]:
            self.box(
                self.center - self.half_width * 0.8,
                0.135,
                self.center + self.half_width * 0.8,
                0.175,
                self.color("scarf_color"),
            )
        self._bag_front()
        if attributes["held"] == "phone" and self.view != "back":
            hand_x = self.center + (self.facing or 0.5) * self.half_width * 0.7
            self.box(hand_x - 0.015 * self.unit, 0.30, hand_x + 0.015 * self.unit, 0.35, (20, 20, 24))
        if attributes["held"] == "umbrella":
            self._umbrella_canopy()

    def _legs(self) -> None:
        attributes, unit = self.attributes, self.unit
        lower = attributes["lower_type"]
        leg_width = 0.06 * unit * (0.8 if self.view in ("left", "right") else 1.0)
        swing = self.stride * 0.09 * unit if self.view in ("left", "right") else self.stride * 0.015 * unit
        hip_y, ankle_y = self.y(0.5), self.y(0.94)
        for sign in (-1.0, 1.0):
            hip_x = self.center + sign * (0.045 * unit if self.view in ("front", "back") else 0.01 * unit)
            ankle_x = hip_x + sign * swing
            covered = lower in ("trousers", "jeans", "long skirt")
            leg_color = COLORS[attributes["lower_color"]] if covered else self.skin
            self.draw.polygon(
                [
                    (hip_x - leg_width / 2, hip_y),
                    (hip_x + leg_width / 2, hip_y),
                    (ankle_x + leg_width / 2, ankle_y),
                    (ankle_x - leg_width / 2, ankle_y),
                ],
                fill=leg_color,
            )
            if lower == "jeans":  # a lighter seam tells jeans from trousers
                self.draw.line(
                    [(hip_x, hip_y), (ankle_x, ankle_y)], fill=_shade(leg_color, 1.35), width=max(1, int(unit * 0.006))
                )
            if lower == "shorts":
                knee_x, knee_y = hip_x + sign * swing * 0.35, self.y(0.66)
                self.draw.polygon(
                    [
                        (hip_x - leg_width * 0.6, hip_y),
                        (hip_x + leg_width * 0.6, hip_y),
                        (knee_x + leg_width * 0.6, knee_y),
                        (knee_x - leg_width * 0.6, knee_y),
                    ],
                    fill=COLORS[attributes["lower_color"]],
                )
            self._shoe(ankle_x, leg_width)
        if lower in ("skirt", "long skirt"):
            hem = 0.72 if lower == "skirt" else 0.92
            spread = self.half_width * (1.3 if lower == "skirt" else 1.5)
            self.draw.polygon(
                [
                    (self.center - self.half_width, self.y(0.48)),
                    (self.center + self.half_width, self.y(0.48)),
                    (self.center + spread, self.y(hem)),
                    (self.center - spread, self.y(hem)),
                ],
                fill=COLORS[attributes["lower_color"]],
            )

    def _shoe(self, ankle_x: float, leg_width: float) -> None:
        kind = self.attributes["shoes_type"]
        color = self.color("shoes_color")
        top = {"boots": 0.88, "sandals": 0.965, "sneakers": 0.94, "shoes": 0.945}[kind]
        toe = self.facing * leg_width * 0.6
        self.draw.rectangle(
            [
                ankle_x - leg_width * 0.65 + min(toe, 0),
                self.y(top),
                ankle_x + leg_width * 0.65 + max(toe, 0),
                self.y(0.995),
            ],
            fill=color,
        )
        if kind == "sneakers":  # white soles
            self.draw.rectangle(
                [
                    ankle_x - leg_width * 0.65 + min(toe, 0),
                    self.y(0.98),
                    ankle_x + leg_width * 0.65 + max(toe, 0),
                    self.y(0.995),
                ],
                fill=(240, 240, 240),
            )

    def _torso(self) -> None:
        attributes = self.attributes
        kind = attributes["upper_type"]
        color = self.color("upper_color")
        left, right = self.center - self.half_width, self.center + self.half_width
        hem = {"coat": 0.64, "jacket": 0.5, "dress": 0.5, "sweater": 0.5, "shirt": 0.5, "t-shirt": 0.49, "vest": 0.49}[
            kind
        ]
        self.draw.rectangle([left, self.y(0.155), right, self.y(hem)], fill=color)
        if kind == "dress":
            flare = self.half_width * 1.45
            self.draw.polygon(
                [
                    (left, self.y(0.48)),
                    (right, self.y(0.48)),
                    (self.center + flare, self.y(0.76)),
                    (self.center - flare, self.y(0.76)),
                ],
                fill=color,
            )
        pattern = attributes["upper_pattern"]
        if pattern != "plain":
            second = self.color("upper_pattern_color")
            step = max(2.0, 0.035 * self.unit)
            line_width = max(1, int(step * 0.4))
            y = self.y(0.17)
            while y < self.y(hem) - 1:
                self.draw.line([(left, y), (right, y)], fill=second, width=line_width)
                y += step
            if pattern == "checked":
                x = left + step / 2
                while x < right:
                    self.draw.line([(x, self.y(0.155)), (x, self.y(hem))], fill=second, width=line_width)
                    x += step
        if self.view != "back":
            if kind in ("jacket", "coat"):  # an open front
                self.draw.line(
                    [
                        (self.center + self.facing * self.half_width * 0.5, self.y(0.16)),
                        (self.center + self.facing * self.half_width * 0.5, self.y(hem)),
                    ],
                    fill=_shade(color, 0.55),
                    width=max(1, int(self.unit * 0.008)),
                )
            elif kind == "shirt":  # a collar
                collar = self.half_width * 0.45
                self.draw.polygon(
                    [
                        (self.center - collar, self.y(0.155)),
                        (self.center + collar, self.y(0.155)),
                        (self.center, self.y(0.2)),
                    ],
                    fill=_shade(color, 1.3),
                )
        if kind == "sweater":  # a ribbed hem band
            self.box(left, hem - 0.025, right, hem, _shade(color, 0.75))

    def _arms(self) -> None:
        unit = self.unit
        # how far down the arm the sleeve reaches (shoulder 0 .. hand 1); a vest has none
        sleeve = {"t-shirt": 0.28, "vest": 0.0, "dress": 0.12}.get(self.attributes["upper_type"], 1.0)
        arm_width = 0.038 * unit
        swing = self.stride * 0.08 * unit if self.view in ("left", "right") else 0.0
        front_or_back = self.view in ("front", "back")
        shoulder_y, hand_y = self.y(0.165), self.y(0.5)
        for sign in (-1.0, 1.0) if front_or_back else (-self.facing,):
            shoulder_x = self.center + sign * (self.half_width + arm_width / 2) if front_or_back else self.center
            hand_x = shoulder_x + swing * sign
            self.draw.line([(shoulder_x, shoulder_y), (hand_x, hand_y)], fill=self.skin, width=max(1, int(arm_width)))
            if sleeve > 0:
                sleeve_end = (shoulder_x + (hand_x - shoulder_x) * sleeve, shoulder_y + (hand_y - shoulder_y) * sleeve)
                self.draw.line(
                    [(shoulder_x, shoulder_y), sleeve_end],
                    fill=self.color("upper_color"),
                    width=max(1, int(arm_width * 1.15)),
                )

    def _head(self) -> None:
        attributes, unit = self.attributes, self.unit
        radius = 0.058 * unit
        cx, cy = self.center + self.facing * 0.01 * unit, self.y(0.075)
        self.box(self.center - 0.018 * unit, 0.11, self.center + 0.018 * unit, 0.16, self.skin)  # neck
        style = attributes["hair_style"]
        hair = HAIR_COLORS[attributes["hair_color"]] if attributes["hair_color"] else self.skin
        face_visible = self.view != "back"
        head_color = self.skin if face_visible or style == "bald" else hair
        self.draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=head_color)
        if style != "bald":
            # hair covers the top half of the head (and the back of the head when seen from behind)
            self.draw.pieslice(
                [cx - radius * 1.05, cy - radius * 1.1, cx + radius * 1.05, cy + radius * 0.9], 180, 360, fill=hair
            )
            if self.view in ("left", "right"):
                back_x = cx - self.facing * radius * 0.55
                self.draw.ellipse(
                    [back_x - radius * 0.55, cy - radius * 0.9, back_x + radius * 0.55, cy + radius * 0.6], fill=hair
                )
            if style == "long" and self.view == "back":
                self.box(cx - radius * 1.05, 0.075, cx + radius * 1.05, 0.26, hair)
            elif style == "ponytail":
                tail_x = cx - (self.facing or 0.0) * radius * 1.1
                self.draw.ellipse(
                    [tail_x - radius * 0.3, cy - radius * 0.2, tail_x + radius * 0.3, cy + radius * 1.6], fill=hair
                )
            elif style == "bun":
                self.draw.ellipse(
                    [cx - radius * 0.45, cy - radius * 1.75, cx + radius * 0.45, cy - radius * 0.85], fill=hair
                )
        hat = attributes["hat"]
        if hat != "none":
            color = self.color("hat_color")
            self.draw.pieslice(
                [cx - radius * 1.1, cy - radius * 1.25, cx + radius * 1.1, cy + radius * 0.6], 180, 360, fill=color
            )
            if hat == "cap" and self.view != "back":
                brim = radius * (1.0 if self.facing else 0.6)
                brim_x = cx + (self.facing or 0.0) * radius
                self.draw.rectangle(
                    [brim_x - brim, cy - radius * 0.4, brim_x + brim, cy - radius * 0.22], fill=_shade(color, 0.85)
                )
            elif hat == "beanie":
                self.draw.rectangle(
                    [cx - radius * 1.1, cy - radius * 0.5, cx + radius * 1.1, cy - radius * 0.25],
                    fill=_shade(color, 0.8),
                )
        if attributes["glasses"] and face_visible:
            lens = radius * 0.3
            width = max(1, int(unit * 0.006))
            for offset in (-0.4, 0.4) if not self.facing else (self.facing * 0.55,):
                lx = cx + offset * radius
                self.draw.ellipse(
                    [lx - lens, cy - lens * 0.5, lx + lens, cy + lens * 1.5], outline=(15, 15, 15), width=width
                )

    def _long_hair_behind(self) -> None:
        hair = HAIR_COLORS[self.attributes["hair_color"]]
        radius = 0.058 * self.unit
        self.box(self.center - radius * 1.1, 0.06, self.center + radius * 1.1, 0.25, hair)

    def _bag_front(self) -> None:
        bag = self.attributes["bag"]
        if bag == "none" or bag == "suitcase":
            return
        color = self.color("bag_color")
        unit, width = self.unit, max(1, int(self.unit * 0.008))
        if bag == "backpack":
            if self.view == "back":
                self.box(self.center - self.half_width * 0.85, 0.18, self.center + self.half_width * 0.85, 0.43, color)
            elif self.view == "front":
                for sign in (-1.0, 1.0):
                    x = self.center + sign * self.half_width * 0.6
                    self.draw.line([(x, self.y(0.16)), (x, self.y(0.36))], fill=_shade(color, 0.8), width=width * 2)
            return
        side = self.facing or 1.0
        if bag == "shoulder bag":
            hip_x = self.center + side * self.half_width * 1.1
            self.draw.line(
                [(self.center - side * self.half_width * 0.8, self.y(0.16)), (hip_x, self.y(0.44))],
                fill=(20, 20, 20),
                width=width,
            )
            self.draw.rectangle([hip_x - 0.035 * unit, self.y(0.42), hip_x + 0.035 * unit, self.y(0.5)], fill=color)
        else:  # handbag: hangs from a hand
            hand_x = self.center + side * (self.half_width + 0.03 * unit)
            self.draw.rectangle([hand_x - 0.03 * unit, self.y(0.49), hand_x + 0.03 * unit, self.y(0.55)], fill=color)

    def _suitcase(self) -> None:
        side = -self.facing if self.facing else 1.0
        x = self.center + side * (self.half_width + 0.09 * self.unit)
        color = self.color("bag_color")
        self.box(x - 0.06 * self.unit, 0.62, x + 0.06 * self.unit, 0.97, color)
        self.draw.line(
            [(x, self.y(0.62)), (x - side * 0.03 * self.unit, self.y(0.5))],
            fill=(40, 40, 40),
            width=max(1, int(self.unit * 0.008)),
        )

    def _umbrella_shaft(self) -> None:
        x = self.center + (self.facing or 1.0) * (self.half_width + 0.02 * self.unit)
        self.draw.line([(x, self.y(0.02)), (x, self.y(0.45))], fill=(50, 50, 50), width=max(1, int(self.unit * 0.008)))

    def _umbrella_canopy(self) -> None:
        x = self.center + (self.facing or 1.0) * (self.half_width + 0.02 * self.unit)
        radius = 0.15 * self.unit
        top, bottom = self.y(0.02) - radius * 0.55, self.y(0.02) + radius * 0.55
        self.draw.pieslice([x - radius, top, x + radius, bottom], 180, 360, fill=self.color("held_color"))


def _noise_bank(seed: int, height: int, width: int) -> np.ndarray:
    """Sensor noise is cropped from one seeded bank per run: a fresh normal draw per image would cost more than the
    drawing itself."""
    return np.random.default_rng(seed).standard_normal((2 * height, 2 * width, 3), dtype=np.float32)


def render_image(
    identity: Identity, nuisance: Nuisance, image_size: tuple[int, int], noise_bank: np.ndarray | None = None
) -> Image.Image:
    """Draw one image: background and clutter, the person, an occluding pole, then lighting, blur and noise."""
    height, width = image_size
    image = Image.new("RGB", (width, height), nuisance.wall)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, nuisance.horizon * height, width, height], fill=nuisance.ground)
    for x, y, w, h, color in nuisance.clutter:
        draw.rectangle([x * width - w * width / 2, y * height, x * width + w * width / 2, (y + h) * height], fill=color)
    _Figure(draw, identity, nuisance, height, width).render()
    if nuisance.pole is not None:
        x, w, color = nuisance.pole
        draw.rectangle([x * width, 0, x * width + w * width, height], fill=color)
    if nuisance.blur:
        image = image.filter(ImageFilter.GaussianBlur(nuisance.blur * height / 256))
    pixels = np.asarray(image, dtype=np.float32) * np.asarray(nuisance.gain, dtype=np.float32)
    if noise_bank is None:
        noise_bank = _noise_bank(0, height, width)
    top = int(nuisance.noise_offset[0] * (noise_bank.shape[0] - height))
    left = int(nuisance.noise_offset[1] * (noise_bank.shape[1] - width))
    pixels += noise_bank[top : top + height, left : left + width] * nuisance.noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------------------------------------
# Writing, caching, loading
# ---------------------------------------------------------------------------------------------------------------------


def write_plan(synth_plan: SynthPlan, output_dir: str | os.PathLike, *, progress: bool = True) -> None:
    """Render every planned image and write the annotation file and the metadata sidecar (written last, so its
    presence marks a complete folder)."""
    from tqdm.auto import tqdm

    config = synth_plan.config
    spec = get_spec(config.layout)
    output_dir = Path(output_dir)
    image_root = output_dir / spec.image_dir
    for folder in sorted({str(Path(image.raw_path).parent) for image in synth_plan.images}):
        (image_root / folder).mkdir(parents=True, exist_ok=True)
    noise_bank = _noise_bank(config.seed, *config.image_size)
    for image in tqdm(
        synth_plan.images, desc="Rendering SynthPEDES", unit=" images", disable=None if progress else True
    ):
        rendered = render_image(image.identity, image.nuisance, config.image_size, noise_bank)
        rendered.save(image_root / image.raw_path, format="JPEG", quality=92)
    annotation = output_dir / spec.annotation_files[0]
    annotation.write_text(json.dumps(_annotation_records(synth_plan)), encoding="utf-8")
    (output_dir / META_FILE).write_text(json.dumps(_meta(synth_plan), indent=1), encoding="utf-8")


def read_meta(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchmarkFormatError(f"{str(folder)!r} is not a SynthPEDES folder (no {META_FILE})") from None


def generate(
    output_dir: str | os.PathLike,
    *,
    num_ids: int | None = None,
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    layout: str = "cuhk-pedes",
    split_ids: Mapping[str, int] | None = None,
    split_fractions: Mapping[str, float] | None = None,
    images_per_id: Sequence[int] = DEFAULT_IMAGES_PER_ID,
    overwrite: bool = False,
    progress: bool = True,
) -> SynthPlan:
    """Generate SynthPEDES into `output_dir` in the raw layout of `layout` and return what was planned.

    Sizes: `split_ids={"train": 1000, "validation": 100, "test": 200}`, or `num_ids` shared out by `split_fractions`
    (defaults: 1,300 identities, 1/13 validation, 2/13 test). `image_size` is (height, width); 384x128 is the IVT
    input, smaller sizes render faster. A folder that already holds the same configuration is left as it is.
    """
    config = make_config(
        num_ids=num_ids,
        image_size=image_size,
        seed=seed,
        layout=layout,
        split_ids=split_ids,
        split_fractions=split_fractions,
        images_per_id=images_per_id,
    )
    output_dir = Path(output_dir)
    synth_plan = plan(config)
    if output_dir.exists() and any(output_dir.iterdir()):
        if (output_dir / META_FILE).is_file() and read_meta(output_dir)["config"] == config.to_json():
            return synth_plan
        if not overwrite:
            raise FileExistsError(f"{str(output_dir)!r} is not empty; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_plan(synth_plan, output_dir, progress=progress)
    return synth_plan


def ensure_generated(cache_root: str | os.PathLike, **generate_kwargs: Any) -> Path:
    """The folder under `cache_root` holding SynthPEDES for these arguments, generating it on first use.

    Each configuration has its own sub-folder (named after it), built in a temporary folder and renamed into place,
    so an interrupted run never leaves a half-written folder that looks complete.
    """
    generate_kwargs.pop("progress", None)
    config = make_config(**generate_kwargs)
    folder = Path(cache_root) / config.cache_name
    if (folder / META_FILE).is_file() and read_meta(folder)["config"] == config.to_json():
        return folder
    if folder.exists():
        shutil.rmtree(folder)  # an incomplete earlier run
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    write_plan(plan(config), staging)
    os.replace(staging, folder)
    return folder


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ivt_hf" / "synthpedes"


def read_synthpedes(
    root: str | os.PathLike | None = None,
    *,
    on_invalid: OnInvalid = "error",
    verify_images: bool = True,
    **generate_kwargs: Any,
) -> tuple[datasets.DatasetDict, BenchmarkReport | None]:
    """SynthPEDES as a DatasetDict and its report (see `load_benchmark`). `root` may be a cache folder (generated on
    first use), a folder written by `ivt data synth`, or a prepared folder. The generator configuration is stored as
    JSON in each split's `info.description`, which is how `baselines` rebuilds the attributes of a loaded dataset."""
    root = default_cache_root() if root is None else Path(root)
    if is_prepared(root):
        if generate_kwargs:
            raise TypeError("generator arguments cannot apply to an already prepared folder")
        return load_prepared(root, expected_source=SOURCE), None
    if (root / META_FILE).is_file():
        folder = root
    else:
        folder = ensure_generated(root, **generate_kwargs)
    config = SynthConfig.from_json(read_meta(folder)["config"])
    return normalise_benchmark(
        config.layout,
        folder,
        on_invalid=on_invalid,
        verify_images=verify_images,
        source=SOURCE,
        description=json.dumps({"synthpedes": config.to_json()}),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Floor and ceiling
# ---------------------------------------------------------------------------------------------------------------------


def random_similarity(num_queries: int, num_gallery: int, *, seed: int = 0) -> torch.Tensor:
    """Chance level: i.i.d. uniform scores, shape (num_queries, num_gallery)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_queries, num_gallery, generator=generator)


def oracle_similarity(
    query_attributes: Sequence[Mapping[str, Any]],
    gallery_attributes: Sequence[Mapping[str, Any]],
    *,
    seed: int = 0,
    chunk_size: int = 512,
) -> torch.Tensor:
    """The exact-attribute oracle, shape (num_queries, num_gallery).

    `query_attributes[q]` holds only the attributes caption q mentions (with the described person's values);
    `gallery_attributes[g]` all described attributes of the person in gallery image g. A gallery image scores the
    number of mentioned attributes it agrees with, plus uniform noise in [0, 0.5) that breaks ties at random (a
    ranking that favoured low gallery indices would flatter the oracle). Its R@1 is the ceiling that captions allow:
    it fails only when a caption leaves out the attribute that tells siblings apart.
    """
    import torch

    vocabulary: dict[tuple[str, Any], int] = {}

    def encode(attributes: Mapping[str, Any], missing: int) -> list[int]:
        return [
            vocabulary.setdefault((key, attributes[key]), len(vocabulary)) if key in attributes else missing
            for key in ATTRIBUTE_KEYS
        ]

    gallery = torch.tensor([encode(attributes, -2) for attributes in gallery_attributes], dtype=torch.long)
    queries = torch.tensor([encode(attributes, -1) for attributes in query_attributes], dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(len(queries), len(gallery), generator=generator) * 0.5
    for start in range(0, len(queries), chunk_size):
        chunk = queries[start : start + chunk_size]  # (chunk, keys); -1 never equals a gallery code
        scores[start : start + chunk_size] += (chunk[:, None, :] == gallery[None, :, :]).sum(-1).float()
    return scores


def _split_of(dataset_or_root: Any, split: str) -> datasets.Dataset:
    import datasets

    if isinstance(dataset_or_root, (str, os.PathLike)):
        dataset_or_root = read_synthpedes(dataset_or_root, verify_images=False)[0]
    if isinstance(dataset_or_root, datasets.DatasetDict):
        dataset_or_root = dataset_or_root[split]
    return dataset_or_root


def planned_baseline_inputs(images: Sequence[PlannedImage]) -> dict[str, Any]:
    """Baseline inputs with `images` as the gallery (in order) and their captions as the queries (image by image,
    caption by caption: the order of `caption_view`). Ids are the original ones, which is all the metrics need."""
    return {
        "query_attributes": [
            {key: image.identity.attributes[key] for key in keys} for image in images for keys in image.mentions
        ],
        "gallery_attributes": [image.identity.attributes for image in images],
        "query_pids": [image.identity.person_id for image in images for _ in image.mentions],
        "gallery_pids": [image.identity.person_id for image in images],
    }


def baseline_inputs(dataset: datasets.Dataset) -> dict[str, Any]:
    """Queries (the attributes each caption mentions) and gallery (each image's person's attributes) of a loaded
    SynthPEDES split, rebuilt from the generator configuration stored in the dataset (no metadata file needed)."""
    try:
        config = SynthConfig.from_json(json.loads(dataset.info.description)["synthpedes"])
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            "baselines need a SynthPEDES dataset (its info.description holds the generator config)"
        ) from None
    if config.version != GENERATOR_VERSION:
        raise ValueError(f"dataset made by generator version {config.version}, this is {GENERATOR_VERSION}: regenerate")
    image_dir = get_spec(config.layout).image_dir
    planned = {f"{image_dir}/{image.raw_path}": image for image in plan(config).images}
    return planned_baseline_inputs([planned[path] for path in dataset.select_columns(["image_path"])["image_path"]])


def baseline_metrics(inputs: Mapping[str, Any], *, seed: int = 0) -> dict[str, dict[str, float]]:
    """`{"random": metrics, "oracle": metrics}` for baseline inputs (standard protocol, percent)."""
    import torch

    from ..metrics import retrieval_metrics

    query_pids = torch.as_tensor(list(inputs["query_pids"]))
    gallery_pids = torch.as_tensor(list(inputs["gallery_pids"]))
    similarities = {
        "random": random_similarity(len(query_pids), len(gallery_pids), seed=seed),
        "oracle": oracle_similarity(inputs["query_attributes"], inputs["gallery_attributes"], seed=seed),
    }
    return {
        name: retrieval_metrics(similarity, query_pids, gallery_pids, protocol="standard")
        for name, similarity in similarities.items()
    }


def baselines(dataset_or_root: Any, split: str = "test", *, seed: int = 0) -> dict[str, dict[str, float]]:
    """Floor and ceiling of a SynthPEDES split: `{"random": metrics, "oracle": metrics}` (R1, R5, R10, mAP, mINP in
    percent, standard protocol), so that any model's numbers can be read between them.

    `dataset_or_root`: a DatasetDict or Dataset from `load_benchmark("synthpedes", ...)`, or a SynthPEDES folder.
    """
    return baseline_metrics(baseline_inputs(_split_of(dataset_or_root, split)), seed=seed)
