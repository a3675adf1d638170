"""What users of RSTPReid (and the other benchmarks) keep finding by hand in the captions, counted in one pass.

Four kinds of noise, each with its count and a few examples naming the image:

- `shared`: the same caption (compared after lower-casing, collapsing spaces and dropping end punctuation) written
  for images of different identities. A retrieval model cannot tell those people apart from that text, and a caption
  shared across splits leaks test text into training.
- `non_english`: a caption mostly in another script (more than a fifth of its letters outside ASCII), or whose words
  are mostly not English words (fewer than half are whole words of the shipped BERT vocabulary, the model's own).
- `code_or_markup`: template leftovers and fragments of code: brackets, `<...>`, `\\n`/`/n`, `=`, `;`, URLs.
- `empty_or_short`: no words, or fewer than `min_words`.

A caption can fall in more than one kind. The report only counts and shows; nothing is dropped or changed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # datasets is imported lazily so that `ivt --help` stays fast
    import datasets

KINDS = ("shared", "non_english", "code_or_markup", "empty_or_short")
TITLES = {
    "shared": "same caption, different identities",
    "non_english": "non-English",
    "code_or_markup": "code or markup fragments",
    "empty_or_short": "empty or very short",
}
_WORD = re.compile(r"[^\W\d_]+")
_CODE = re.compile(r"[{}<>\[\]\\;=|`]|/n|https?://|\bdef\b|\w\(\)")


@dataclass(frozen=True)
class CaptionRecord:
    """One caption with where it comes from: its split, the identity as in the file, and its image."""

    split: str
    person_id: int
    image_path: str
    caption: str


@dataclass
class CaptionNoiseReport:
    """Counts of each kind of noise over `total` captions, with up to `max_examples` examples each."""

    total: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def format(self) -> str:
        """A table of the four kinds (captions and their share), then the examples of each kind found."""
        lines = [f"caption noise over {self.total:,} captions", f"{'kind':<38}{'captions':>10}{'share':>9}"]
        for kind in KINDS:
            share = 100 * self.counts[kind] / max(self.total, 1)
            lines.append(f"{TITLES[kind]:<38}{self.counts[kind]:>10,}{share:>8.2f}%")
        for kind in KINDS:
            if self.examples[kind]:
                lines.append(f"{TITLES[kind]}, for example:")
                lines.extend(f"  {example}" for example in self.examples[kind])
        return "\n".join(lines)


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The whole words (not `##` pieces, not `[SPECIAL]` tokens) of the BERT vocabulary shipped with the package."""
    text = resources.files("ivt_hf").joinpath("resources", "bert-base-uncased-vocab.txt").read_text(encoding="utf-8")
    return frozenset(token for token in text.split("\n") if token.isalpha() and token.isascii())


def normalised(caption: str) -> str:
    """The caption compared for sharing: lower case, single spaces, no punctuation or spaces at either end."""
    return " ".join(caption.lower().split()).strip(" .,;:!?\"'")


def is_non_english(caption: str, words: list[str]) -> bool:
    """Mostly another script, or mostly words that are not English (see the module docstring)."""
    letters = [character for character in caption if character.isalpha()]
    if letters and sum(not character.isascii() for character in letters) > len(letters) / 5:
        return True
    known = english_words()
    return bool(words) and sum(word.lower() in known for word in words) < len(words) / 2


def caption_kinds(caption: str, min_words: int = 3) -> list[str]:
    """The kinds of per-caption noise (all but `shared`, which needs the other captions) this caption shows."""
    words = _WORD.findall(caption)
    kinds = []
    if is_non_english(caption, words):
        kinds.append("non_english")
    if _CODE.search(caption):
        kinds.append("code_or_markup")
    if len(words) < min_words:
        kinds.append("empty_or_short")
    return kinds


def caption_noise(records: Iterable[CaptionRecord], *, min_words: int = 3, max_examples: int = 3) -> CaptionNoiseReport:
    """Count the four kinds of noise in `records` (a pure function of them; see the module docstring)."""
    report = CaptionNoiseReport()
    by_text: dict[str, list[CaptionRecord]] = defaultdict(list)
    for record in records:
        report.total += 1
        by_text[normalised(record.caption)].append(record)
        for kind in caption_kinds(record.caption, min_words):
            report.counts[kind] += 1
            if len(report.examples[kind]) < max_examples:
                report.examples[kind].append(f"{record.split} {record.image_path}: {record.caption!r}")
    for text, group in by_text.items():
        identities = sorted({record.person_id for record in group})
        if not text or len(identities) < 2:
            continue
        report.counts["shared"] += len(group)
        if len(report.examples["shared"]) < max_examples:
            splits = ", ".join(sorted({record.split for record in group}))
            report.examples["shared"].append(
                f"{len(group)} captions of ids {', '.join(map(str, identities[:5]))}"
                f"{' ...' if len(identities) > 5 else ''} ({splits}): {group[0].caption!r}"
            )
    return report


def dataset_caption_records(dataset: datasets.DatasetDict) -> Iterable[CaptionRecord]:
    """Every caption of a benchmark in the common schema, from its arrow columns (no image is decoded)."""
    for split, split_dataset in dataset.items():
        table = split_dataset.select_columns(["original_person_id", "image_path", "captions"]).with_format("arrow")[:]
        columns = table.to_pydict()
        for person_id, image_path, captions in zip(
            columns["original_person_id"], columns["image_path"], columns["captions"]
        ):
            for caption in captions:
                yield CaptionRecord(split, person_id, image_path, caption)
