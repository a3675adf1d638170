"""SynthPEDES captions: a CUHK-PEDES-style grammar that describes a person's attributes (`write_caption`)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .attributes import ATTRIBUTE_KEYS

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
