"""SynthPEDES: a procedural text-based person retrieval benchmark that needs no download.

The real benchmarks are licence-gated, so tests, CI, the demo and a new user's first run use this generator instead
(design: `docs/design.md`, "SynthPEDES" section). Each identity is a tuple of DESCRIBED attributes (clothes, colours,
bag, hair, ...); nuisance factors (view, pose, background, lighting, noise, an occluding pole) vary between images of
one identity and are never described. Families of "hard siblings" differ from their base identity by a colour swap
between two garments (same words, different binding) or by exactly one attribute, and never straddle splits.

The generator writes the raw layout of a real benchmark (`reid_raw.json`, `ICFG-PEDES.json` or `data_captions.json`
plus `imgs/`), so synthetic data is read by the same normaliser as a user's real copy, and a sidecar
`synthpedes_meta.json` with every identity's attributes and, per caption, the attribute keys it mentions. That record
gives an exact floor and ceiling for any model: `random_similarity` and the exact-attribute `oracle_similarity`.

Generation is a pure function of (seed, sizes, layout, generator version): planning (attributes, captions, nuisance
parameters) uses its own seeded streams per family, image and caption, and rendering is a pure function of a planned
image, so the annotation files are byte-identical for one seed and the plan can be rebuilt without rendering.

Modules, each importing only those before it: `attributes` (the described attributes and hard siblings), `captions`
(the caption grammar), `planning` (configuration and the pixel-free plan), `rendering` (drawing one image), `storage`
(writing, caching, loading) and `oracle` (the floor and the ceiling as similarity matrices).
"""

from .attributes import ATTRIBUTE_KEYS, COLOR_KEYS, COLORS, HAIR_COLORS, SKIN_TONES, sample_attributes
from .captions import write_caption
from .oracle import (
    baseline_inputs,
    oracle_similarity,
    planned_baseline_inputs,
    random_similarity,
    synthpedes_split,
)
from .planning import (
    CAPTIONS_PER_IMAGE,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_IMAGES_PER_ID,
    DEFAULT_NUM_IDS,
    DEFAULT_SPLIT_FRACTIONS,
    GENERATOR_VERSION,
    Identity,
    Nuisance,
    PlannedImage,
    SynthConfig,
    SynthPlan,
    make_config,
    plan,
)
from .rendering import render_image
from .storage import (
    META_FILE,
    SOURCE,
    default_cache_root,
    ensure_generated,
    generate,
    read_meta,
    read_synthpedes,
    write_plan,
)

__all__ = [
    # attributes
    "ATTRIBUTE_KEYS",
    "COLOR_KEYS",
    "COLORS",
    "HAIR_COLORS",
    "SKIN_TONES",
    "sample_attributes",
    # captions
    "write_caption",
    # planning
    "CAPTIONS_PER_IMAGE",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_IMAGES_PER_ID",
    "DEFAULT_NUM_IDS",
    "DEFAULT_SPLIT_FRACTIONS",
    "GENERATOR_VERSION",
    "Identity",
    "Nuisance",
    "PlannedImage",
    "SynthConfig",
    "SynthPlan",
    "make_config",
    "plan",
    # rendering
    "render_image",
    # storage
    "META_FILE",
    "SOURCE",
    "default_cache_root",
    "ensure_generated",
    "generate",
    "read_meta",
    "read_synthpedes",
    "write_plan",
    # oracle
    "baseline_inputs",
    "oracle_similarity",
    "planned_baseline_inputs",
    "random_similarity",
    "synthpedes_split",
]
