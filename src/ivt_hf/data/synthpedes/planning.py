"""SynthPEDES planning: the configuration (`SynthConfig`, `make_config`), the pixel-free plan of identities,
families, splits, images, nuisance factors and captions (`plan`), and the annotation records and metadata built from
a plan."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ...errors import IVTInputError
from ..specs import get_spec
from .attributes import ATTRIBUTE_KEYS, SKIN_TONES, colour_swap_sibling, one_attribute_sibling, sample_attributes
from .captions import write_caption

GENERATOR_VERSION = 1
DEFAULT_NUM_IDS = 1300  # the demo: about 1,000 train / 100 validation / 200 test identities
DEFAULT_SPLIT_FRACTIONS = {"validation": 1 / 13, "test": 2 / 13}  # train takes the rest
DEFAULT_IMAGE_SIZE = (384, 128)  # (height, width), the IVT input size
DEFAULT_IMAGES_PER_ID = (2, 4)  # CUHK-PEDES averages 3.1 images per identity
CAPTIONS_PER_IMAGE = 2


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
            raise IVTInputError("give either split_ids or num_ids/split_fractions, not both")
        unknown = set(split_ids) - set(spec.splits)
        if unknown:
            raise IVTInputError(f"layout {layout} has splits {spec.splits}, not {sorted(unknown)}")
        resolved = {split: int(split_ids.get(split, 0)) for split in spec.splits}
    else:
        total = DEFAULT_NUM_IDS if num_ids is None else int(num_ids)
        fractions = DEFAULT_SPLIT_FRACTIONS if split_fractions is None else split_fractions
        held_out = [split for split in spec.splits if split != "train"]
        if total < len(spec.splits):
            raise IVTInputError(f"num_ids must be at least {len(spec.splits)} for layout {layout}, got {total}")
        resolved = {split: max(1, round(total * fractions.get(split, 0.0))) for split in held_out}
        resolved = {"train": total - sum(resolved.values()), **resolved}
    if any(count < 0 for count in resolved.values()) or resolved.get("train", 0) < 1:
        raise IVTInputError(f"invalid identities per split: {resolved}")
    height, width = (int(value) for value in image_size)
    if height < 32 or width < 16:
        raise IVTInputError(f"image_size (height, width) must be at least (32, 16), got {(height, width)}")
    low, high = (int(value) for value in images_per_id)
    if not 1 <= low <= high:
        raise IVTInputError(f"images_per_id must be an inclusive range 1 <= low <= high, got {(low, high)}")
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
            sibling = (colour_swap_sibling if kind == "colour_swap" else one_attribute_sibling)(base, rng)
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


def annotation_records(synth_plan: SynthPlan) -> list[dict[str, Any]]:
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


def metadata_record(synth_plan: SynthPlan) -> dict[str, Any]:
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
