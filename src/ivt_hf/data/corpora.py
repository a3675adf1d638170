"""Person-centric pre-training corpora, as their authors publish them: WebPerson, LUPerson-MLLM, MALS and SYNTH-PEDES.

Each ships as one or more JSON files beside its images, in a layout of its own (`docs/corpora.md`). `sources.py`
recognises the layout (a folder's kind); `read_corpus` reads it into one `datasets.Dataset` of pairs (one row per
caption: `key`, `image` (the image's path, relative to the corpus folder), `caption`, and for MALS `attributes`), which
`pairs.RowStream` streams like any other map-style source: the same process split, exact resume and `on_invalid`.

Captions are cleaned as each corpus's authors clean them, and what the cleaning did is counted in a `CorpusReport`
(logged, and written by `ivt pretrain` into its results):

- WebPerson: a literal `"/n"` left in captions is stripped (a fix, counted);
- LUPerson-MLLM: captions holding a template leftover (`description]` or `<`) are replaced by a clean caption of the
  same image from the static-instruction files (`Ts-*.json`), as the MLLM4Text-ReID code does, or dropped when the
  image has none; captions whose image is not in the folder are dropped;
- every corpus: an empty caption is dropped, and an image listed twice keeps its first record.

A record that is broken (not the layout's shape, a path leading outside the corpus folder) is another matter: with
`on_invalid="error"` it stops the read with one line naming the file and the record, with `"skip"` it is left out,
listed in the report and logged. Paths are checked lexically here (absolute, `..`); the stream reads each image through
`paths.resolve_under`, which also refuses a symbolic link out of the folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import typing
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .paths import escapes_as_member_name
from .specs import BenchmarkFormatError, OnInvalid, describe_record

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

CorpusKind = Literal["webperson", "luperson_mllm", "mals", "synth_pedes"]

# the files that say what a folder is (`sources.py` looks for them at the folder's top, or in MALS's `gene_attrs/`)
WEBPERSON_ANNOTATION = re.compile(r"^\d+w\.json$")  # 100w.json: 100 "wan" (ten thousands) = 1M images
WEBPERSON_IMAGES = "images"
LUPERSON_MLLM_FILES = ("Ts-qwen.json", "Td-qwen.json", "Ts-shikra.json", "Td-shikra.json")  # the authors' order
LUPERSON_MLLM_STATIC = ("Ts-shikra.json", "Ts-qwen.json")  # the static-instruction files replacements come from
LUPERSON_MLLM_IMAGES = "images"  # the flat image folder, when not the corpus folder itself
LUPERSON_TEMPLATE_MARKS = ("description]", "<")  # what the authors take for a template leftover
MALS_ANNOTATIONS = "gene_attrs"
MALS_ATTRIBUTES = 27
SYNTH_PEDES_FILES = ("synthpedes_dataset.json", "synthpedes-dataset.json")

DISPLAY_NAMES: dict[CorpusKind, str] = {
    "webperson": "WebPerson",
    "luperson_mllm": "LUPerson-MLLM",
    "mals": "MALS",
    "synth_pedes": "SYNTH-PEDES",
}

# what the cleaning did, as reports and logs say it
STRIPPED_NEWLINE = "'/n' stripped"
REPLACED_TEMPLATE = "template leftover replaced from a Ts file"
DROPPED_TEMPLATE = "template leftover dropped (no clean Ts caption of the image)"
DROPPED_EMPTY = "empty caption dropped"
DROPPED_NO_IMAGE = "caption of an image not in the folder dropped"
DROPPED_DUPLICATE = "repeated record of an image dropped"


@dataclass
class CorpusReport:
    """What `read_corpus` read, fixed, replaced, dropped and skipped.

    Attributes:
        corpus: the corpus kind (`webperson`, ...).
        files: the annotation files read, in order.
        images: images with at least one caption kept.
        captions: captions kept: the pairs.
        cleaning: how many captions (records, for a repeated record) each cleaning rule fixed, replaced or dropped.
        examples: for each cleaning rule, where it first applied (`FILE: record N`), to look at.
        skipped: broken records left out with `on_invalid="skip"`: where and why.
        streamed: counted over the pairs read so far (WebPerson's Hub parquet, streamed), not over the whole corpus
            at load; `images` and `captions` are then not known.
    """

    corpus: str
    files: list[str] = field(default_factory=list)
    images: int = 0
    captions: int = 0
    cleaning: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    streamed: bool = False

    def count(self, rule: str, where: str, times: int = 1) -> None:
        self.cleaning[rule] += times
        self.examples.setdefault(rule, where)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for `pretrain_results.json`."""
        return {
            "corpus": self.corpus,
            "files": list(self.files),
            "images": self.images,
            "captions": self.captions,
            "cleaning": dict(sorted(self.cleaning.items())),
            "examples": dict(sorted(self.examples.items())),
            "skipped": len(self.skipped),
            "streamed": self.streamed,
        }

    def format(self) -> str:
        name = DISPLAY_NAMES.get(self.corpus, self.corpus)
        if self.streamed:
            lines = [f"{name}: {', '.join(self.files)}, streamed; cleaning of the pairs read so far"]
        else:
            lines = [f"{name}: {self.captions} captions of {self.images} images from {', '.join(self.files)}"]
        lines += [f"  {rule}: {count} (first: {self.examples[rule]})" for rule, count in sorted(self.cleaning.items())]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} broken record(s), first: {self.skipped[0]}")
        return "\n".join(lines)


class InvalidCorpusRecord(Exception):
    """One record does not have the layout's shape; `_Collector` raises or skips it."""


class _Collector:
    """The pairs read so far, the report, and the `on_invalid` policy for broken records."""

    def __init__(self, corpus: CorpusKind, on_invalid: str):
        if on_invalid not in typing.get_args(OnInvalid):  # callers pass it checked (`arguments.check_on_invalid`)
            raise ValueError(f"on_invalid must be one of {typing.get_args(OnInvalid)}, got {on_invalid!r}")
        self.report = CorpusReport(corpus)
        self.on_invalid = on_invalid
        self.keys: list[str] = []
        self.images: list[str] = []
        self.captions: list[str] = []
        self.attributes: list[list[int]] = []
        self._seen: set[str] = set()

    def invalid(self, file: Path, index: int | str, image: str | None, reason: str) -> None:
        record = f"record {index}" if isinstance(index, int) else f"entry {index!r}"
        if self.on_invalid == "error":
            if isinstance(index, int):
                raise BenchmarkFormatError(reason, annotation_file=file, record_index=index, image_path=image)
            raise BenchmarkFormatError(f"{record}: {reason}", annotation_file=file)
        where = f"{file}: {describe_record(index, image) if isinstance(index, int) else record}: {reason}"
        self.report.skipped.append(where)
        logger.warning("skipped a broken record: %s", where)

    def first_time(self, image: str, where: str) -> bool:
        """Whether `image` is new (a repeated record of an image is dropped, counted)."""
        if image in self._seen:
            self.report.count(DROPPED_DUPLICATE, where)
            return False
        self._seen.add(image)
        return True

    def add(self, image: str, captions: list[str], where: str, attributes: list[int] | None = None) -> None:
        """The image's captions as pairs, empty ones dropped and counted; keys `IMAGE#N` (N from 1, as given)."""
        kept = 0
        for number, caption in enumerate(captions, 1):
            caption = " ".join(caption.split())
            if not caption:
                self.report.count(DROPPED_EMPTY, where)
                continue
            self.keys.append(f"{image}#{number}")
            self.images.append(image)
            self.captions.append(caption)
            if attributes is not None:
                self.attributes.append(attributes)
            kept += 1
        self.report.images += kept > 0
        self.report.captions += kept

    def dataset(self) -> datasets.Dataset:
        import datasets

        columns: dict[str, list] = {"key": self.keys, "image": self.images, "caption": self.captions}
        features = {name: datasets.Value("string") for name in columns}
        if self.report.corpus == "mals":
            columns["attributes"] = self.attributes
            features["attributes"] = datasets.Sequence(datasets.Value("int8"), length=MALS_ATTRIBUTES)
        return datasets.Dataset.from_dict(columns, features=datasets.Features(features), split="train")


def read_json(path: Path) -> Any:
    """A JSON file, or one error line naming it and where it is broken."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise BenchmarkFormatError(
            f"invalid JSON at line {error.lineno} column {error.colno} (character {error.pos}): {error.msg}",
            annotation_file=path,
        ) from None
    except UnicodeDecodeError as error:
        raise BenchmarkFormatError(f"not UTF-8 text: {error}", annotation_file=path) from None
    # a file the system refuses stays an OSError: the machine's refusal, not bad input (the `ivt` guard's exit 3)


def _read_list(path: Path) -> list:
    """A JSON file that holds a list of records."""
    records = read_json(path)
    if not isinstance(records, list):
        raise BenchmarkFormatError(
            f"expected a JSON list of records, found {type(records).__name__}", annotation_file=path
        )
    return records


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidCorpusRecord(f"{what} should be {_KIND_NAMES[kind]}, found {type(value).__name__} {value!r:.60}")
    return value


_KIND_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a JSON object"}


def _relative_image(path: str, what: str) -> str:
    """An image path of a record, refused when it is empty or leads outside the corpus folder."""
    if not path.strip():
        raise InvalidCorpusRecord(f"{what} is empty")
    if escapes_as_member_name(path):
        raise InvalidCorpusRecord(f"{what} {path!r} leads outside the corpus folder (absolute or '..')")
    return path


def _captions(values: list, what: str) -> list[str]:
    return [_expect(caption, str, f"{what} {number}") for number, caption in enumerate(values)]


# ----- the four layouts -----


def webperson_files(folder: Path) -> list[Path]:
    """The annotation files of a WebPerson release (`100w.json`, ...) at the folder's top, sorted."""
    return sorted(path for path in folder.iterdir() if path.is_file() and WEBPERSON_ANNOTATION.match(path.name))


def _read_webperson(folder: Path, collector: _Collector) -> None:
    """`N w.json`: a list of one-key objects `{"<relpath>.jpg": {"caption1": ..., "caption2": ...}}`, images under
    `images/<relpath>`; the literal `"/n"` the captions carry is stripped."""
    if not (folder / WEBPERSON_IMAGES).is_dir():
        raise BenchmarkFormatError(
            f"holds {', '.join(path.name for path in webperson_files(folder))} but no {WEBPERSON_IMAGES}/ folder: "
            f"WebPerson's images go in {WEBPERSON_IMAGES}/<the path each record names>",
            annotation_file=folder,
        )
    for file in webperson_files(folder):
        collector.report.files.append(file.name)
        records = _read_list(file)
        for index, record in enumerate(records):
            where = f"{file.name}: record {index}"
            relpath = next(iter(record), None) if isinstance(record, dict) and len(record) == 1 else None
            try:
                if relpath is None:
                    raise InvalidCorpusRecord("expected an object of one key, the image path, holding its captions")
                image = f"{WEBPERSON_IMAGES}/{_relative_image(relpath, 'the image path')}"
                fields = _expect(record[relpath], dict, "the image's captions")
                names = sorted((name for name in fields if str(name).startswith("caption")), key=_caption_number)
                if not names:
                    raise InvalidCorpusRecord(f"no caption1 / caption2 (fields: {', '.join(map(str, fields))})")
                captions = _captions([fields[name] for name in names], "caption")
            except InvalidCorpusRecord as error:
                collector.invalid(file, index, relpath if isinstance(relpath, str) else None, str(error))
                continue
            if not collector.first_time(image, where):
                continue
            stripped = [caption.replace("/n", " ") for caption in captions]
            changed = sum(before != after for before, after in zip(captions, stripped, strict=True))
            if changed:
                collector.report.count(STRIPPED_NEWLINE, where, changed)
            collector.add(image, stripped, where)


def _caption_number(name: str) -> tuple[int, str]:
    digits = name[len("caption") :].lstrip("_")
    return (int(digits) if digits.isdigit() else 0, name)


def luperson_mllm_images(folder: Path) -> Path:
    """The flat folder of LUPerson images: `images/` when the corpus folder has one, else the corpus folder."""
    return folder / LUPERSON_MLLM_IMAGES if (folder / LUPERSON_MLLM_IMAGES).is_dir() else folder


def _read_luperson_mllm(folder: Path, collector: _Collector) -> None:
    """`{T_s,T_d}-{qwen,shikra}.json`: objects `{"<path>/<name>.jpg": caption}`, matched by basename against a flat
    folder of LUPerson images, up to four captions per image in the authors' file order. A template leftover is
    replaced by the first clean caption of the image in the static files (`Ts-shikra`, then `Ts-qwen`: the authors
    draw one at random from the same list), or dropped."""
    image_folder = luperson_mllm_images(folder)
    prefix = "" if image_folder == folder else f"{LUPERSON_MLLM_IMAGES}/"
    present = {entry.name for entry in os.scandir(image_folder) if entry.name.endswith(".jpg") and entry.is_file()}
    by_image: dict[str, list[tuple[str, str, str]]] = {}  # name -> [(file, key, caption)] in file order
    for name in LUPERSON_MLLM_FILES:
        file = folder / name
        if not file.is_file():
            continue
        collector.report.files.append(name)
        captions = read_json(file)
        if not isinstance(captions, dict):
            raise BenchmarkFormatError(
                f"expected a JSON object of image path -> caption, found {type(captions).__name__}",
                annotation_file=file,
            )
        for key, caption in captions.items():
            basename = key.replace("\\", "/").rsplit("/", 1)[-1]
            try:
                if basename in ("", ".", ".."):
                    raise InvalidCorpusRecord("the key names no image file")
                _expect(caption, str, "the caption")
            except InvalidCorpusRecord as error:
                collector.invalid(file, key, None, str(error))
                continue
            by_image.setdefault(basename, []).append((name, key, caption))
    for basename in sorted(by_image):
        entries = by_image[basename]
        if basename not in present:
            collector.report.count(DROPPED_NO_IMAGE, f"{entries[0][0]}: entry {entries[0][1]!r}", len(entries))
            continue
        static = [caption for file, _, caption in sorted(entries, key=_static_order) if _is_static(file)]
        safe = [caption for caption in static if not _template_leftover(caption)]
        kept = []
        for file, key, caption in entries:
            if _template_leftover(caption):
                where = f"{file}: entry {key!r}"
                if not safe:
                    collector.report.count(DROPPED_TEMPLATE, where)
                    continue
                collector.report.count(REPLACED_TEMPLATE, where)
                caption = safe[0]
            kept.append(caption)
        collector.add(prefix + basename, kept, f"{entries[0][0]}: entry {entries[0][1]!r}")


def _is_static(file: str) -> bool:
    return file in LUPERSON_MLLM_STATIC


def _static_order(entry: tuple[str, str, str]) -> int:
    return LUPERSON_MLLM_STATIC.index(entry[0]) if _is_static(entry[0]) else len(LUPERSON_MLLM_STATIC)


def _template_leftover(caption: str) -> bool:
    return any(mark in caption for mark in LUPERSON_TEMPLATE_MARKS)


def mals_files(folder: Path) -> list[Path]:
    """MALS's annotation files, `gene_attrs/*.json`, sorted."""
    annotations = folder / MALS_ANNOTATIONS
    return sorted(path for path in annotations.glob("*.json") if path.is_file()) if annotations.is_dir() else []


def _read_mals(folder: Path, collector: _Collector) -> None:
    """`gene_attrs/*.json`: lists of `{"image": "gene_crop/...jpg", "caption", "image_id", "label": [27 ints]}`,
    images under the MALS folder; `label` is kept as the attribute vector (`attributes`; -1: unknown)."""
    for file in mals_files(folder):
        collector.report.files.append(f"{MALS_ANNOTATIONS}/{file.name}")
        records = _read_list(file)
        for index, record in enumerate(records):
            path = record.get("image") if isinstance(record, dict) else None
            try:
                _expect(record, dict, "the record")
                image = _relative_image(_expect(_field(record, "image"), str, "image"), "image")
                caption = _expect(_field(record, "caption"), str, "caption")
                label = _expect(_field(record, "label"), list, "label")
                if len(label) != MALS_ATTRIBUTES or not all(
                    isinstance(value, int) and not isinstance(value, bool) and -1 <= value <= 127 for value in label
                ):
                    raise InvalidCorpusRecord(
                        f"label should be {MALS_ATTRIBUTES} integers (-1: unknown), found {label!r:.80}"
                    )
            except InvalidCorpusRecord as error:
                collector.invalid(file, index, path if isinstance(path, str) else None, str(error))
                continue
            where = f"{MALS_ANNOTATIONS}/{file.name}: record {index}"
            if collector.first_time(image, where):
                collector.add(image, [caption], where, attributes=label)


def _field(record: dict, name: str) -> Any:
    if name not in record:
        raise InvalidCorpusRecord(f"missing field {name!r} (fields: {', '.join(sorted(map(str, record)))})")
    return record[name]


def synth_pedes_file(folder: Path) -> Path | None:
    """SYNTH-PEDES's annotation file, either spelling (`synthpedes_dataset.json` first), or None."""
    return next((folder / name for name in SYNTH_PEDES_FILES if (folder / name).is_file()), None)


def _read_synth_pedes(folder: Path, collector: _Collector) -> None:
    """`synthpedes_dataset.json`: a list of `{"id", "file_path": "PartN/<id>/<n>.jpg", "attributes", "captions":
    [2-3], "prompt_caption"}`; the pairs are the `captions` (the prompt caption is the generator's input, not a
    description the authors train on)."""
    file = synth_pedes_file(folder)
    collector.report.files.append(file.name)
    records = _read_list(file)
    for index, record in enumerate(records):
        path = record.get("file_path") if isinstance(record, dict) else None
        try:
            _expect(record, dict, "the record")
            _expect(_field(record, "id"), int, "id")
            image = _relative_image(_expect(_field(record, "file_path"), str, "file_path"), "file_path")
            captions = _captions(_expect(_field(record, "captions"), list, "captions"), "caption")
        except InvalidCorpusRecord as error:
            collector.invalid(file, index, path if isinstance(path, str) else None, str(error))
            continue
        where = f"{file.name}: record {index}"
        if collector.first_time(image, where):
            collector.add(image, captions, where)


_READERS = {
    "webperson": _read_webperson,
    "luperson_mllm": _read_luperson_mllm,
    "mals": _read_mals,
    "synth_pedes": _read_synth_pedes,
}


def read_corpus(
    kind: CorpusKind, folder: str | os.PathLike, *, on_invalid: str = "error"
) -> tuple[datasets.Dataset, CorpusReport]:
    """The pairs of a corpus folder of `kind` (as `sources.recognise_source` found it), one row per caption kept:
    `key` (`IMAGE#N`), `image` (the path relative to `folder`), `caption` (white space collapsed) and, for MALS,
    `attributes`; with the report of what was read and cleaned (module docstring).

    Raises:
        BenchmarkFormatError: an annotation file that is not JSON (naming it, the line and column), not of the
            layout's shape, or (`on_invalid="error"`) a broken record (naming the file and the record).
    """
    if kind not in _READERS:
        raise ValueError(f"unknown corpus kind {kind!r}; expected one of {sorted(_READERS)}")
    folder = Path(folder)
    collector = _Collector(kind, on_invalid)
    _READERS[kind](folder, collector)
    return collector.dataset(), collector.report


def iter_reports(stream: Any) -> Iterator[CorpusReport]:
    """The `CorpusReport` of every corpus a pair stream (or a mixture of them) reads."""
    for each in getattr(stream, "streams", [stream]):
        report = getattr(each, "cleaning", None)
        if report is not None:
            yield report


__all__ = [
    "DISPLAY_NAMES",
    "CorpusKind",
    "CorpusReport",
    "iter_reports",
    "luperson_mllm_images",
    "mals_files",
    "read_corpus",
    "read_json",
    "synth_pedes_file",
    "webperson_files",
]
