"""Endless, resumable, process-split streams of generic image-text pairs, for vision-language pre-training.

`open_pair_stream(source, rank=, world_size=, seed=)` yields `{"key", "image" (encoded bytes, not decoded), "caption"
(as in the data; checked with `clean_caption`, which the caller applies with its own word limit), "epoch"}` for
ever, from any image-text collection as `datasets` reads it:

- a local folder of WebDataset `.tar` shards (`KEY.jpg` + `KEY.txt` per sample; found recursively) or of `.parquet`
  files, and a Hub dataset id `ORG/NAME` whose data files are such shards: STREAMED, one shard at a time
  (`datasets.load_dataset("webdataset" | "parquet", data_files=[shard], streaming=True)`), so the collection never
  has to be on disk or in memory;
- a local image folder with `metadata.jsonl` / `metadata.csv` (`datasets`' `imagefolder`) or a `save_to_disk` folder:
  read as a memory-mapped `datasets.Dataset`, each row a "shard";
- a person-centric corpus folder as published (WebPerson, LUPerson-MLLM, MALS, SYNTH-PEDES): its JSON read by
  `corpora.read_corpus` into a `datasets.Dataset` of one row per caption, cleaned as its authors clean it and counted
  (`cleaning`), then read as the rows above. WebPerson's Hub release (parquet with numbered caption columns) is
  streamed as parquet, one pair per caption column (`parquet_columns`).

`sources.recognise_source` says which (as it does for `load_data`); `open_pair_stream(...)` then makes a `ShardStream`
for the shards or a `RowStream` for the rows, one interface: iteration, `state_dict()`, `load_state_dict()`, `epoch`,
`skipped`, `shards`, `num_shards`, `shards_for_epoch()`.

Processes are split by shard: each epoch the sorted shard list is permuted with `random.Random(f"{seed}-{epoch}")`
and process `rank` of `world_size` reads `permuted[rank::world_size]`, so the processes read disjoint shards and
together every pair once per epoch; then the next epoch begins, with a new permutation. Rows of a map-style source are
permuted the same way (with numpy, seeded from the same generator).

The position is exact: `state_dict()` (JSON-serialisable) describes the stream after the last pair yielded, and
`load_state_dict(state)` on a fresh stream built with the same arguments continues with exactly the next pair. Within
a shard the position is the `datasets` `IterableDataset`'s own `state_dict()` of a stream built without `.shuffle()`
(`datasets` loses shuffle buffers on resume, so shard order is shuffled here instead), plus the shard's place in this
epoch's list; for map-style sources, the number of rows consumed.

A pair without an image or a caption, or with a caption that is empty once cleaned, raises `PairDataError` naming the
shard and the key, or with `on_invalid="skip"` is skipped, logged and counted; so is a sample whose member names lead
outside the shard's folder (`../x.jpg`, `/abs/x.jpg`) and a row naming an image file outside its folder (`paths.py`).
A local tar shard is checked whole before it is read (`tar_defect`): one cut short or damaged, which `tarfile` would
read up to the damage and then end in silence, raises naming the shard and the byte, or with skip gives its pairs
before the damage and is counted (once an epoch) and logged. `write_webdataset_shards` (`pair_writing.py`) writes
shards of this layout (for converting data, and for tests).

`PairStream`, the name this function had, still works and warns once: it is a function, named like a class.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import re
import tarfile
import threading
import unicodedata
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import IVTInputError
from .arguments import check_on_invalid
from .corpora import DROPPED_EMPTY, STRIPPED_NEWLINE, CorpusReport, read_corpus
from .hf_datasets import read_saved_dataset
from .paths import PathOutsideRootError, escapes_as_member_name, resolve_under
from .sources import CORPUS_KINDS, PAIR_KINDS, Source, recognise_source
from .specs import BenchmarkFormatError, describe_record

if TYPE_CHECKING:
    import datasets

__all__ = ["PairDataError", "PairStream", "RowStream", "ShardStream", "clean_caption", "open_pair_stream"]

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_COLUMNS = ("jpg", "jpeg", "png", "webp", "image", "img")
DEFAULT_CAPTION_COLUMNS = ("txt", "text", "caption")
# WebDataset fields that `datasets`' webdataset builder decodes to `str` (by their last extension); others stay bytes
_TEXT_EXTENSIONS = ("txt", "text", "transcript")
_HF_URL = re.compile(r"^hf://datasets/[^/]+/[^/@]+(?:@[^/]+)?/(?P<path>.+)$")
_STATE_FORMAT = "ivt_hf.PairStream"  # the stream's first name, kept: checkpoints hold it
_STATE_VERSION = 1
DROPPED = "dropped by the corpus's cleaning"  # `_ShardFormat.parts`' refusal that is no error: counted, not skipped
CORPUS_COLUMNS = ("key", "attributes")  # what a corpus's rows carry besides image and caption (`corpora.py`)
_DOWNLOAD_COUNT_LOCK = threading.Lock()


class PairDataError(IVTInputError):
    """Image-text pairs that cannot be read as asked: the message names the source, shard or file, and the key."""

    def __init__(self, reason: str, *, where: str | os.PathLike | None = None, key: str | None = None):
        self.reason = reason
        self.where = None if where is None else str(where)
        self.key = key
        location = [part for part in (self.where, None if key is None else f"sample {key!r}") if part]
        super().__init__(": ".join([*location, reason]))


class _InvalidPair(Exception):
    """One pair is broken (no image, no caption, ...): an error or a skip, by `on_invalid`."""


# ----- captions -----


def refuse_other_settings(state: dict, expected: dict, *, saved_by: str, advice: str, where: str) -> None:
    """A `PairDataError` naming every setting of `expected` that a saved stream `state` holds otherwise (a resume must
    continue the same stream, or it would silently read other pairs); nothing when they all agree."""
    differ = [name for name, value in expected.items() if state.get(name) != value]
    if differ:
        shown = "; ".join(f"{name} {state.get(name)!r} there, {expected[name]!r} here" for name in differ)
        raise PairDataError(f"was saved by {saved_by} ({shown}); {advice}", where=where)


def clean_caption(text: str, max_words: int = 50) -> str:
    """The authors' pre-training caption cleaning.

    Lower-cased; `-` and `/` become spaces; every other character that is not a letter (any script, with its
    combining marks), a digit or white space is removed; white space is collapsed to single spaces; at most
    `max_words` words are kept. `"A man in a T-shirt/jeans, holding a bag!"` becomes
    `"a man in a t shirt jeans holding a bag"`.

    Raises:
        ValueError: the caption is empty once cleaned (only punctuation or white space), or `max_words` < 1.
        TypeError: `text` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"a caption should be a string, found {type(text).__name__}")
    if max_words < 1:
        raise IVTInputError(f"max_words should be at least 1, got {max_words}")
    spaced = text.lower().replace("-", " ").replace("/", " ")
    kept = "".join(
        char for char in spaced if char.isalnum() or char.isspace() or unicodedata.category(char).startswith("M")
    )
    words = kept.split()
    if not words:
        raise IVTInputError(f"caption {text!r:.80} is empty once punctuation is removed")
    return " ".join(words[:max_words])


# ----- checking a tar file whole -----


def tar_defect(path: str | os.PathLike) -> str | None:
    """None for a complete tar file; else what is wrong with it and at which byte.

    A tar file cut short (an interrupted download or copy) or damaged is read by `tarfile`, and so by `datasets`, up
    to the damage, where it stops in silence as if the archive ended there: the members after it are lost, and the
    same ones every epoch. This reads the headers alone (seeking past the data), so it costs one small read a member,
    and finds: a header cut short or that is not one (a bad checksum), a member whose data the file ends inside, no
    end-of-archive marker (two zero blocks) after the last member (the file ends on a member boundary: cut short
    there), and data after that marker (members nobody would read).
    """
    last, offset = None, 0
    try:
        with open(path, "rb") as file, tarfile.open(fileobj=file, mode="r:") as tar:
            while (member := tar.next()) is not None:
                last, offset = member, tar.offset
                tar.members = []  # the headers are not kept: a shard may hold many members
            offset = tar.offset
            encoding, errors = tar.encoding, tar.errors
    except tarfile.ReadError as error:  # tarfile raises for a defect at byte 0 and for data cut short, not otherwise
        if str(error) == "unexpected end of data" and last is not None:
            return (
                f"ends at byte {os.path.getsize(path)}, inside member {last.name!r} (its data runs to byte "
                f"{last.offset_data + last.size}): the file is cut short"
            )
        return f"is not a readable tar at byte {offset}: {error}"
    with open(path, "rb") as file:
        file.seek(offset)
        end = file.read(2 * tarfile.BLOCKSIZE)
        after = last.name if last is not None else "the start"
        if end[: tarfile.BLOCKSIZE].count(0) != min(len(end), tarfile.BLOCKSIZE):
            try:
                tarfile.TarInfo.frombuf(end[: tarfile.BLOCKSIZE], encoding, errors)
                reason = "not a member header"
            except tarfile.HeaderError as error:
                reason = str(error)
            return f"holds no valid header at byte {offset}, after {after!r} ({reason}): damaged or cut short"
        if len(end) < 2 * tarfile.BLOCKSIZE or end.count(0) != len(end):
            return (
                f"ends at byte {offset + len(end)} without the end-of-archive marker (two zero blocks) after "
                f"{after!r}: the file is cut short"
            )
        while chunk := file.read(1 << 20):
            if chunk.count(0) != len(chunk):
                return f"holds data after its end-of-archive marker at byte {offset}: members there are never read"
    return None


# ----- the stream -----


@contextlib.contextmanager
def _no_download_count():
    """`datasets.load_dataset` of a packaged builder (webdataset, parquet, imagefolder) sends a HEAD request to count
    a download unless `HF_UPDATE_DOWNLOAD_COUNTS` is off: a network request for local files. Off for the call."""
    import datasets

    with _DOWNLOAD_COUNT_LOCK:
        previous = datasets.config.HF_UPDATE_DOWNLOAD_COUNTS
        datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
        try:
            yield
        finally:
            datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = previous


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _with_causes(error: BaseException) -> str:
    """The error and the errors it was raised from, on one line: `datasets` wraps the one that says what is wrong
    (a metadata row naming a file outside the folder, ...) in a `DatasetGenerationError` that does not."""
    messages = [_one_line(error)]
    while (error := error.__cause__) is not None:
        messages.append(_one_line(error))
    return ": ".join(messages)


def _find_column(columns: list[str], candidates: tuple[str, ...], role: str, where: Any) -> str:
    found = next((name for name in candidates if name in columns), None)
    if found is None:
        wanted = " or ".join(map(repr, candidates))
        raise PairDataError(
            f"no {role} column: looked for {wanted}; the columns are {', '.join(columns)} (name yours with "
            f"{role}_column=)",
            where=where,
        )
    return found


def _undecoded(data: Any, column: str) -> Any:
    """`data` (a `Dataset` or an `IterableDataset`) with an `Image` column read as bytes and path, never decoded."""
    import datasets

    if data.features is not None and isinstance(data.features.get(column), datasets.Image):
        return data.cast_column(column, datasets.Image(decode=False))
    return data


class _PairStreamBase:
    """What both kinds of stream share: the settings, the epochs and their order, the state, checking each pair.

    A subclass fills `shards` / `num_shards`, reads this process's share of one epoch from the current position
    (`_read`), and says what a position is (`_start_of_epoch`, `_position_state`, `_loaded_position`) and how its
    units are permuted (`_permutation`). `_state_route` is the state's `route` (`webdataset`, `parquet`, `rows`).
    """

    _state_route: str
    unit = "shards"  # what `num_shards` counts, as messages say it

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        rank: int,
        world_size: int,
        seed: int,
        split: str,
        revision: str | None,
        image_column: str | None,
        caption_column: str | None,
        on_invalid: str,
    ):
        if not isinstance(world_size, int) or world_size < 1:
            raise IVTInputError(f"world_size should be a positive integer, got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise IVTInputError(f"rank should be an integer in [0, {world_size}), got {rank!r}")
        if not isinstance(seed, int):
            raise IVTInputError(f"seed should be an integer, got {seed!r}")
        if image_column is not None and image_column == caption_column:
            raise IVTInputError(f"image_column and caption_column are both {image_column!r}")
        self.source, self.rank, self.world_size, self.seed, self.split = source, rank, world_size, seed, split
        self.revision = revision
        self.on_invalid = check_on_invalid(on_invalid)
        self._image_columns = (image_column,) if image_column else DEFAULT_IMAGE_COLUMNS
        self._caption_columns = (caption_column,) if caption_column else DEFAULT_CAPTION_COLUMNS
        self._where = str(source)  # the source, as messages name it
        self._base: Path | None = None  # the folder that image paths are read from (None: images must be embedded)
        self.shards: tuple[str, ...] = ()
        self.num_shards = 0
        self.epoch = 0
        self.skipped = 0
        self._position: dict[str, Any] = self._start_of_epoch()
        self._generation = 0  # bumped by each new iterator and each load: an older iterator then stops
        self._epoch_order: tuple[int, Sequence[int]] | None = None  # (epoch, this process's shards or rows)

    def _check_enough_for_processes(self, remedy: str) -> None:
        if self.num_shards < self.world_size:
            raise PairDataError(
                f"has {self.num_shards} {self.unit} for {self.world_size} processes: every process needs at least "
                f"one of its own; {remedy}, or use fewer processes",
                where=self._where,
            )

    # ----- epochs and positions -----

    def _start_of_epoch(self) -> dict[str, Any]:
        raise NotImplementedError

    def _permutation(self, generator: random.Random) -> Sequence[int]:
        """All `num_shards` units in an epoch's order, drawn from `generator`."""
        raise NotImplementedError

    def _position_state(self) -> dict[str, Any]:
        """The position, as `state_dict()` describes it."""
        return dict(self._position)

    def _loaded_position(self, position: dict[str, Any], epoch: int) -> dict[str, Any] | None:
        """The position of a state (`position` in `epoch`), or None when it is not a valid one."""
        raise NotImplementedError

    def _order(self, epoch: int) -> Sequence[int]:
        """This process's shards (indices into `shards`) or rows in `epoch`, in reading order."""
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            permuted = self._permutation(random.Random(f"{self.seed}-{epoch}"))
            self._epoch_order = (epoch, permuted[self.rank :: self.world_size])
        return self._epoch_order[1]

    def _fingerprint(self) -> str:
        return hashlib.sha1("\n".join(self.shards).encode()).hexdigest()

    def state_dict(self) -> dict[str, Any]:
        """The position after the last pair yielded, JSON-serialisable:

        `{"format": "ivt_hf.PairStream", "version": 1, "route": "webdataset" | "parquet" | "rows", "source": str,
        "split": str, "num_shards": int, "shards_fingerprint": str, "world_size": int, "rank": int, "seed": int,
        "epoch": int, "skipped": int, "position": {...}}`, where `position` is `{"shard": i, "shard_name": str,
        "example": n, "datasets_state": dict | None}` for a streamed source (the i-th shard of this process's list in
        `epoch`, after its first n examples; `datasets_state` is that shard's `IterableDataset.state_dict()`) and
        `{"row": n}` for a map-style source (after the first n rows of this process's list in `epoch`).
        """
        return {
            "format": _STATE_FORMAT,
            "version": _STATE_VERSION,
            "source": str(self.source),
            "split": self.split,
            **self._settings(),
            "epoch": self.epoch,
            "skipped": self.skipped,
            "position": _json_copy(self._position_state()),
        }

    def _settings(self) -> dict[str, Any]:
        """What a state must match to be loaded: the kind of source and its shards, the processes and the seed."""
        return {
            "route": self._state_route,
            "num_shards": self.num_shards,
            "world_size": self.world_size,
            "rank": self.rank,
            "seed": self.seed,
            "shards_fingerprint": self._fingerprint(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` (from `state_dict()` of a stream built with the same arguments): the next pair is
        the one that stream would have yielded next. A running iterator of this stream stops.

        Raises:
            PairDataError: the state is not a pair stream's state, or was made with another number of shards (or
                other shard names), world size, rank, seed or kind of source.
        """
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise PairDataError("is not a pair stream's state (from its state_dict())", where="the state")
        if state.get("version") != _STATE_VERSION:
            raise PairDataError(
                f"has version {state.get('version')!r}; this stream reads version {_STATE_VERSION}",
                where="the state",
            )
        refuse_other_settings(
            state,
            self._settings(),
            saved_by="a stream over other data or with other settings",
            advice="resume with the same source, rank, world_size and seed, or start afresh without loading it",
            where=f"the state of {state.get('source')!r}",
        )
        epoch, position = state.get("epoch"), state.get("position")
        if not isinstance(epoch, int) or epoch < 0 or not isinstance(position, dict):
            raise PairDataError("has no valid epoch and position", where="the state")
        loaded = self._loaded_position(position, epoch)
        if loaded is None:
            raise PairDataError(f"has an invalid position {position!r}", where="the state")
        self.epoch, self._position, self.skipped = epoch, loaded, int(state.get("skipped", 0))
        self._generation += 1

    # ----- iteration -----

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._generation += 1
        return self._pairs(self._generation)

    def _pairs(self, generation: int) -> Iterator[dict[str, Any]]:
        while True:
            from_start = self._position == self._start_of_epoch()
            yielded = 0
            for pair in self._read(generation):
                yielded += 1
                yield pair
            if self._generation != generation:
                return
            if from_start and yielded == 0:
                raise PairDataError(
                    f"process {self.rank} of {self.world_size} read no valid pair in epoch {self.epoch} (its "
                    f"{self.unit} are empty, or every pair was skipped)",
                    where=self._where,
                )
            self.epoch += 1
            self._position = self._start_of_epoch()

    def _read(self, generation: int) -> Iterator[dict[str, Any]]:
        """The valid pairs of this process's share of the current epoch, from the current position."""
        raise NotImplementedError

    def _check_current(self, generation: int) -> None:
        if self._generation != generation:
            raise RuntimeError("this pair stream's iterator was replaced by a newer one (iter() or load_state_dict())")

    def _accept(
        self,
        image: Any,
        caption: Any,
        key: str,
        where: str,
        generation: int,
        advance: dict,
        refused: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The pair (position advanced), None for a skipped one (position advanced, counted), or an error. `refused`:
        why the sample is invalid whatever it holds (a member name leading outside its shard's folder); `extra`: more
        fields the pair carries (MALS's `attributes`)."""
        try:
            if refused is not None:
                raise _InvalidPair(refused)
            pair = {
                "key": key,
                "image": _image_bytes(image, self._image_columns, self._base),
                "caption": _caption_text(caption, self._caption_columns),
                "epoch": self.epoch,
                **(extra or {}),
            }
        except _InvalidPair as error:
            if self.on_invalid == "error":
                raise PairDataError(str(error), where=where, key=key) from None
            self._check_current(generation)
            self._position.update(advance)
            self.skipped += 1
            logger.warning("skipped an invalid pair: %s: sample %r: %s", where, key, error)
            return None
        self._check_current(generation)
        self._position.update(advance)
        return pair

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.source)!r}, rank={self.rank}, world_size={self.world_size}, "
            f"seed={self.seed}, {self._state_route}, num_shards={self.num_shards}, epoch={self.epoch})"
        )


# ----- shard streams: WebDataset and parquet shards, local or on the Hub -----


def _stream_one_file(builder: str, location: str, **options: Any) -> datasets.IterableDataset:
    """One data file as a `datasets` stream, without a shuffle (its `state_dict()` is then exact)."""
    import datasets

    return datasets.load_dataset(builder, data_files={"train": [location]}, split="train", streaming=True, **options)


class _ShardFormat:
    """How the shards of one format are opened (`open`: one data file as a stream) and read (`parts`: the key, image
    and caption of one example); `name` is the state's `route`."""

    name: str

    def __init__(self, image_columns: tuple[str, ...], caption_columns: tuple[str, ...]):
        self.image_columns, self.caption_columns = image_columns, caption_columns

    def open(self, location: str, where: str) -> datasets.IterableDataset:
        raise NotImplementedError

    def defect(self, location: str) -> str | None:
        """What is wrong with a shard as a whole, found before it is read (None: nothing found)."""
        return None

    def parts(self, example: dict[str, Any], shard: str, row: int) -> tuple[str, Any, Any, str | None]:
        """The key, image and caption of one example (`row` of `shard`), and why it is refused whatever they hold (or
        None)."""
        raise NotImplementedError


class _WebDatasetShards(_ShardFormat):
    """WebDataset `.tar` shards: a sample's image and caption are its members with the first extension present."""

    name = "webdataset"

    def open(self, location: str, where: str) -> datasets.IterableDataset:
        return _stream_one_file("webdataset", location, features=self._features())

    def defect(self, location: str) -> str | None:
        """A local tar file is checked whole (`tar_defect`): a tar cut short otherwise ends early in silence. A Hub
        shard is not (that would download it twice)."""
        return tar_defect(location) if os.path.isfile(location) else None

    def parts(self, example: dict[str, Any], shard: str, row: int) -> tuple[str, Any, Any, str | None]:
        image = next((example[name] for name in self.image_columns if example.get(name) is not None), None)
        caption = next((example[name] for name in self.caption_columns if example.get(name) is not None), None)
        key, refused = str(example.get("__key__")), None
        if escapes_as_member_name(key):  # a name like `../x.jpg` or `/abs/x.jpg`: its key must not lead outside
            members = [f"{key}.{field}" for field, value in example.items() if not field.startswith("__") and value]
            refused = f"member {members[0] if members else key!r} leads outside the shard's folder (absolute or '..')"
        return f"{shard}/{key}", image, caption, refused

    def _features(self) -> datasets.Features:
        """Explicit features: `datasets` then infers none from a first shard (which differs between processes and
        epochs), a member missing from a sample is None (an invalid pair, not a schema error), and images stay
        encoded bytes."""
        import datasets

        features = {"__key__": datasets.Value("string"), "__url__": datasets.Value("string")}
        for name in self.image_columns:
            features[name] = datasets.Image(decode=False)
        for name in self.caption_columns:
            text = name.rsplit(".", 1)[-1].lower() in _TEXT_EXTENSIONS
            features[name] = datasets.Value("string" if text else "binary")
        return datasets.Features(features)


class _ParquetShards(_ShardFormat):
    """`.parquet` shards: the image and caption columns are read from the first shard's schema (`parquet_columns`).
    A row with several numbered caption columns (`caption1`, `caption2`: WebPerson's Hub release) gives one pair per
    caption, keyed `SHARD/row N#K`, cleaned as WebPerson's authors clean theirs: the literal "/n" stripped, counted in
    `cleaning` over the pairs this process read."""

    name = "parquet"
    columns: tuple[str, tuple[str, ...]] | None = None  # (image, captions), set by the first `open`
    cleaning: CorpusReport | None = None

    def open(self, location: str, where: str) -> datasets.IterableDataset:
        if self.columns is None:
            features = _stream_one_file("parquet", location).features or {}
            self.columns = parquet_columns(features, self.image_columns, self.caption_columns, where)
            if len(self.columns[1]) > 1:
                columns = f"parquet columns {', '.join(self.columns[1])}"
                self.cleaning = CorpusReport("webperson", files=[columns], streamed=True)
        image, captions = self.columns
        stream = _undecoded(_stream_one_file("parquet", location, columns=[image, *captions]), image)
        if len(captions) == 1:
            return stream
        return stream.map(  # exact resume inside a row: `datasets` keeps a batched map's position in its state
            _one_row_per_caption,
            batched=True,
            with_indices=True,
            remove_columns=[image, *captions],
            fn_kwargs={"image": image, "captions": captions},
        )

    def parts(self, example: dict[str, Any], shard: str, row: int) -> tuple[str, Any, Any, str | None]:
        image, captions = self.columns
        if len(captions) == 1:
            return f"{shard}/row {row}", example.get(image), example.get(captions[0]), None
        where, caption = f"{shard}/row {example['__row__']}", example.get("__caption__")
        if isinstance(caption, str) and "/n" in caption:
            caption = " ".join(caption.replace("/n", " ").split())
            self.cleaning.count(STRIPPED_NEWLINE, where)
            if not caption:  # nothing but "/n": dropped, as the local release's, and counted
                self.cleaning.count(DROPPED_EMPTY, where)
                return f"{where}#{example['__number__']}", None, None, DROPPED
        return f"{where}#{example['__number__']}", example.get(image), caption, None


def _one_row_per_caption(batch: dict[str, list], rows: list[int], image: str, captions: tuple[str, ...]) -> dict:
    """A batch of rows with several caption columns as one row per caption: the image, `__caption__`, `__row__` (the
    row in its shard) and `__number__` (the caption's, from 1)."""
    out: dict[str, list] = {image: [], "__caption__": [], "__row__": [], "__number__": []}
    for position, row in enumerate(rows):
        for number, column in enumerate(captions, 1):
            out[image].append(batch[image][position])
            out["__caption__"].append(batch[column][position])
            out["__row__"].append(row)
            out["__number__"].append(number)
    return out


NUMBERED_CAPTION = re.compile(r"^(?:caption|text)[_-]?(\d+)$", re.IGNORECASE)


def parquet_columns(
    features: dict[str, Any], image_columns: tuple[str, ...], caption_columns: tuple[str, ...], where: Any
) -> tuple[str, tuple[str, ...]]:
    """The image column and the caption column(s) of a parquet schema (`features`), by this rule, never by guess:

    - image: the first of `image_columns` present (`--image_column`, else jpg, jpeg, png, webp, image, img), else the
      one column of `datasets.Image` type;
    - captions: the first of `caption_columns` present (`--caption_column`, else txt, text, caption): one caption per
      row; else, when no column was named, the string columns named `caption` or `text` and a number (`caption1`,
      `caption_2`, `text3`), in the numbers' order: several captions per row (WebPerson's Hub release: two).

    Raises:
        PairDataError: no column fits, naming the columns found and their types.
    """
    import datasets

    names = list(features)
    image = next((name for name in image_columns if name in names), None)
    typed = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
    if image is None and len(typed) == 1 and image_columns == DEFAULT_IMAGE_COLUMNS:
        image = typed[0]
    caption = next((name for name in caption_columns if name in names), None)
    numbered = sorted(
        (
            name
            for name, feature in features.items()
            if NUMBERED_CAPTION.match(name) and getattr(feature, "dtype", None) in ("string", "large_string")
        ),
        key=lambda name: int(NUMBERED_CAPTION.match(name).group(1)),
    )
    if image is not None and caption is not None:
        return image, (caption,)
    if image is not None and numbered and caption_columns == DEFAULT_CAPTION_COLUMNS:
        return image, tuple(numbered)
    described = ", ".join(f"{name} ({_feature_name(feature)})" for name, feature in features.items())
    wanted = (
        f"image column ({' or '.join(image_columns)}, or the one Image column)"
        if image is None
        else f"caption column ({' or '.join(caption_columns)}, or numbered ones: caption1, caption2, ...)"
    )
    raise PairDataError(
        f"has no {wanted}; its columns are {described or 'none'} (name yours with image_column= / caption_column=)",
        where=where,
    )


def _feature_name(feature: Any) -> str:
    """`string` for a `Value("string")`, the type's name (`Image`, `List`) for the others."""
    import datasets

    return feature.dtype if isinstance(feature, datasets.Value) else type(feature).__name__


_SHARD_FORMATS = {shards.name: shards for shards in (_WebDatasetShards, _ParquetShards)}


class _Shard(NamedTuple):
    location: str  # what `datasets` opens: a path, or an hf:// URL
    where: str  # the shard, as messages name it: its path, or the Hub source and the shard's name


class ShardStream(_PairStreamBase):
    """Pairs from WebDataset `.tar` or `.parquet` shards, in a local folder or a Hub dataset repo, STREAMED shard by
    shard; each process reads its own shards. Made by `open_pair_stream`, which documents it."""

    def __init__(self, source: str | os.PathLike, found: Source, **settings: Any):
        super().__init__(source, **settings)
        if found.kind == "hub":
            self._where += f" at revision {self.revision}" if self.revision else ""
            shard_format, self._shards = self._hub_shards(str(found.location))
        else:
            shard_format, self._base = found.kind, Path(found.location)
            self._shards = {
                path.relative_to(self._base).as_posix(): _Shard(str(path.resolve()), str(path.resolve()))
                for path in found.shards
            }
        self._format = _SHARD_FORMATS[shard_format](self._image_columns, self._caption_columns)
        self._state_route = self._format.name
        self.shards = tuple(sorted(self._shards))
        self.num_shards = len(self.shards)
        self._check_enough_for_processes("write more, smaller shards (write_webdataset_shards)")

    def _hub_shards(self, repo_id: str) -> tuple[str, dict[str, _Shard]]:
        """The format and the shards of `split` in a Hub dataset repo (`datasets.load_dataset_builder`)."""
        import datasets

        try:
            builder = datasets.load_dataset_builder(repo_id, revision=self.revision)
        except (datasets.exceptions.DatasetsError, ValueError, OSError, ConnectionError) as error:
            # no such dataset (or no access), an unknown revision, no data files, an unreachable Hub: datasets'
            # own message says which
            raise PairDataError(f"cannot be read from the Hub: {_one_line(error)}", where=self._where) from error
        data_files = builder.config.data_files or {}
        if self.split not in data_files:
            splits = ", ".join(map(str, data_files)) or "none"
            raise PairDataError(f"has no split {self.split!r}; its splits are {splits}", where=self._where)
        if builder.name not in _SHARD_FORMATS:
            raise PairDataError(
                f"holds {builder.name} data files; a pair stream reads WebDataset .tar or .parquet shards",
                where=self._where,
            )
        shards = {}
        for url in data_files[self.split]:
            match = _HF_URL.match(str(url))
            name = match.group("path") if match else str(url).rsplit("/", 1)[-1]
            shards[name] = _Shard(str(url), f"{self._where}: {name}")
        return builder.name, shards

    @property
    def cleaning(self) -> CorpusReport | None:
        """What WebPerson's caption cleaning did to the pairs this process read (parquet with several caption
        columns), else None."""
        return self._format.cleaning if isinstance(self._format, _ParquetShards) else None

    def shards_for_epoch(self, epoch: int) -> list[str]:
        """The shard names this process reads in `epoch`, in order."""
        return [self.shards[index] for index in self._order(epoch)]

    def _start_of_epoch(self) -> dict[str, Any]:
        return {"shard": 0, "example": 0, "datasets_state": None}

    def _permutation(self, generator: random.Random) -> Sequence[int]:
        order = list(range(self.num_shards))
        generator.shuffle(order)
        return order

    def _position_state(self) -> dict[str, Any]:
        position = dict(self._position)
        order = self._order(self.epoch)
        position["shard_name"] = self.shards[order[position["shard"]]] if position["shard"] < len(order) else None
        return position

    def _loaded_position(self, position: dict[str, Any], epoch: int) -> dict[str, Any] | None:
        shard, example = position.get("shard"), position.get("example")
        in_range = isinstance(shard, int) and 0 <= shard <= len(self._order(epoch))
        if not in_range or not isinstance(example, int) or example < 0:
            return None
        return {"shard": shard, "example": example, "datasets_state": _json_copy(position.get("datasets_state"))}

    def _read(self, generation: int) -> Iterator[dict[str, Any]]:
        order = self._order(self.epoch)
        while self._position["shard"] < len(order):
            self._check_current(generation)
            name = self.shards[order[self._position["shard"]]]
            shard = self._shards[name]
            defect = self._format.defect(shard.location)
            if defect is not None and self.on_invalid == "error":
                raise PairDataError(f"{defect} (pass on_invalid='skip' to read the pairs before it)", where=shard.where)
            stream = self._open_shard(shard)
            if self._position["datasets_state"] is not None:
                stream.load_state_dict(self._position["datasets_state"])
            examples = iter(stream)
            while True:
                try:
                    example = next(examples)
                except StopIteration:
                    break
                except Exception as error:  # a corrupt tar or parquet file, a .txt that is not UTF-8, ...
                    if defect is not None:  # the defect found up front: the pairs before it have been read
                        break
                    raise PairDataError(
                        f"cannot be read after its first {self._position['example']} examples: {_one_line(error)}",
                        where=shard.where,
                    ) from error
                row = self._position["example"]
                advance = {"example": row + 1, "datasets_state": stream.state_dict()}
                key, image, caption, refused = self._format.parts(example, name, row)
                if refused is DROPPED:  # left out by the corpus's own cleaning, which counts it
                    self._check_current(generation)
                    self._position.update(advance)
                    continue
                pair = self._accept(image, caption, key, shard.where, generation, advance, refused=refused)
                if pair is not None:
                    yield pair
            self._check_current(generation)
            if defect is not None:  # skipped like an invalid pair: counted once an epoch, with the position
                self.skipped += 1
                logger.warning("skipped the rest of a damaged shard: %s: %s", shard.where, defect)
            self._position.update(shard=self._position["shard"] + 1, example=0, datasets_state=None)

    def _open_shard(self, shard: _Shard) -> datasets.IterableDataset:
        import datasets

        location = shard.location
        if any(char in location for char in "*?["):
            location = re.sub(r"([*?\[])", r"[\1]", location)  # data_files are glob patterns: match the name only
        try:
            with _no_download_count():
                return self._format.open(location, shard.where)
        except PairDataError:
            raise
        except (datasets.exceptions.DatasetsError, ValueError, OSError, ConnectionError) as error:
            raise PairDataError(f"cannot be opened by datasets: {_one_line(error)}", where=shard.where) from error


# ----- row streams: an image folder or a save_to_disk folder -----


class RowStream(_PairStreamBase):
    """Pairs from the rows of a map-style source (an image folder with `metadata.jsonl` / `metadata.csv`, a
    `save_to_disk` folder, a published corpus read by `corpora.read_corpus`), read as a `datasets.Dataset`: each row
    is a "shard" of `num_shards`, permuted and split between processes the same way. Made by `open_pair_stream`,
    which documents it. `cleaning`: the `corpora.CorpusReport` of a corpus (what its captions' cleaning did), else
    None."""

    _state_route = "rows"
    unit = "rows"

    def __init__(self, source: str | os.PathLike, found: Source, **settings: Any):
        super().__init__(source, **settings)
        self._base = folder = Path(found.location)
        self.cleaning: CorpusReport | None = None
        if found.kind in CORPUS_KINDS:
            loaded = {"train": self._read_corpus(found)}
        else:
            loaded = _read_saved(folder, self.split) if found.kind == "saved" else _read_imagefolder(folder)
        if self.split not in loaded:
            raise PairDataError(f"has no split {self.split!r}; its splits are {', '.join(loaded)}", where=folder)
        table = loaded[self.split]
        image = _find_column(table.column_names, self._image_columns, "image", folder)
        caption = _find_column(table.column_names, self._caption_columns, "caption", folder)
        # a corpus's rows name their pair (`key`) and MALS's carry attributes, which the pairs keep
        self._extras = [name for name in CORPUS_COLUMNS if name in table.column_names] if self.cleaning else []
        self._table = _undecoded(table.select_columns([image, caption, *self._extras]), image)
        self._columns = (image, caption)
        self.num_shards = len(self._table)
        self._check_enough_for_processes("add rows")

    def _read_corpus(self, found: Source) -> datasets.Dataset:
        try:
            table, self.cleaning = read_corpus(found.kind, found.location, on_invalid=self.on_invalid)
        except BenchmarkFormatError as error:
            record = describe_record(error.record_index, error.image_path)
            raise PairDataError(": ".join(filter(None, [record, error.reason])), where=error.annotation_file) from None
        return table

    def shards_for_epoch(self, epoch: int) -> list[str]:
        """Empty: a map-style source has rows, not shards."""
        return []

    def _start_of_epoch(self) -> dict[str, Any]:
        return {"row": 0}

    def _permutation(self, generator: random.Random) -> Sequence[int]:
        import numpy as np

        # an array: a list of Python ints would be 5x larger
        return np.random.default_rng(generator.getrandbits(128)).permutation(self.num_shards)

    def _loaded_position(self, position: dict[str, Any], epoch: int) -> dict[str, Any] | None:
        row = position.get("row")
        if not isinstance(row, int) or not 0 <= row <= len(self._order(epoch)):
            return None
        return {"row": row}

    def _read(self, generation: int) -> Iterator[dict[str, Any]]:
        order = self._order(self.epoch)
        image_column, caption_column = self._columns
        while self._position["row"] < len(order):
            self._check_current(generation)
            index = int(order[self._position["row"]])
            row = self._table[index]
            advance = {"row": self._position["row"] + 1}
            image, caption = row.get(image_column), row.get(caption_column)
            extra = {name: row[name] for name in self._extras}
            key = extra.pop("key", None) or f"row {index}"
            pair = self._accept(image, caption, key, self._where, generation, advance, extra=extra)
            if pair is not None:
                yield pair


def _read_saved(folder: Path, split: str) -> datasets.DatasetDict:
    """A `save_to_disk` folder without its empty splits; a lone `Dataset` is read as `split` (whatever it names)."""
    try:
        return read_saved_dataset(folder, lone_split=split)
    except BenchmarkFormatError as error:
        raise PairDataError(error.reason, where=folder) from error


def _read_imagefolder(folder: Path) -> datasets.DatasetDict:
    import datasets

    try:
        with _no_download_count():
            return datasets.load_dataset("imagefolder", data_dir=str(folder))
    except (datasets.exceptions.DatasetsError, ValueError, OSError) as error:
        raise PairDataError(
            f"cannot be read as an image folder by datasets: {_with_causes(error)}", where=folder
        ) from error


# ----- the entry point -----

_STREAM_OF_KIND = {
    **dict.fromkeys(CORPUS_KINDS, RowStream),
    "saved": RowStream,
    "imagefolder": RowStream,
    "webdataset": ShardStream,
    "parquet": ShardStream,
    "hub": ShardStream,
}


def open_pair_stream(
    source: str | os.PathLike,
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    split: str = "train",
    revision: str | None = None,
    image_column: str | None = None,
    caption_column: str | None = None,
    on_invalid: str = "error",
) -> ShardStream | RowStream:
    """An endless stream of image-text pairs for one training process, split by shard, resumable exactly: a
    `ShardStream` for shards (streamed), a `RowStream` for a map-style source (`sources.recognise_source` says which).

    Args:
        source: a local folder of WebDataset `.tar` shards (searched recursively) or of `.parquet` files; a local
            image folder with `metadata.jsonl` / `metadata.csv`; a `save_to_disk` folder; a corpus folder as
            published (`corpora.py`: WebPerson, LUPerson-MLLM, MALS, SYNTH-PEDES); or a Hub dataset id
            `ORG/NAME` whose data files (`datasets.load_dataset_builder(source, revision=revision)`) are `.tar` or
            `.parquet` shards. A `Path`, or a string naming an existing path, is never looked up on the Hub. A folder
            is recognised as `load_data` recognises it (`ivt_hf.data.sources`).
        rank, world_size: this process and the number of processes; they read disjoint shards.
        seed: with the epoch, fixes each epoch's shard (or row) order, the same in every process.
        split: the split whose data files (Hub, image folder, `DatasetDict`) are read; ignored for a folder of shards
            and for a `save_to_disk` folder holding a single `Dataset`.
        revision: the Hub revision (branch, tag or commit); the stream pins the commit it resolved to.
        image_column, caption_column: the column (WebDataset: the member extension, e.g. `png`, `caption.txt`)
            holding the image and the caption; by default the first present of `jpg`, `jpeg`, `png`, `webp`,
            `image`, `img` and of `txt`, `text`, `caption`.
        on_invalid: `"error"` (a `PairDataError` naming the shard and key) or `"skip"` (skipped, logged as a warning
            and counted in `skipped`) for a pair without an image or caption, whose caption is empty once cleaned,
            whose member names or image path lead outside its folder; and for a local tar shard cut short or damaged
            (named with the byte where; with skip, its pairs before the damage are read and the shard counts once).
            A shard that `datasets` cannot read otherwise (a corrupt parquet file, a `.txt` that is not UTF-8, a Hub
            tar, which is not checked whole) always raises.

    Iterating yields `{"key": str, "image": bytes, "caption": str, "epoch": int}` for ever (MALS's pairs also carry
    `attributes`, 27 ints, -1 unknown): `key` is unique in the collection (`"SHARD/KEY"` for a WebDataset sample,
    `"SHARD/row N"` for a parquet row, `"SHARD/row N#K"` for its K-th caption column, `"row N"` for a row of a
    map-style source, `"IMAGE#K"` for a corpus's); `image` the encoded bytes, not decoded; `caption` the caption as the
    data holds it (text, after the corpus's own cleaning),
    known to survive `clean_caption`, which the caller applies (with its own word limit: the stream cuts nothing).
    Iterating again continues where the last iterator stopped (one iterator at a time: starting one, or loading a
    state, ends the previous one). `state_dict()` / `load_state_dict(state)` save and restore the position exactly,
    and `shards_for_epoch(epoch)` lists the shards this process reads in `epoch` (none for a map-style source).

    Attributes (of the stream returned):
        rank, world_size, seed, split, revision, source: as given.
        num_shards: shards (data files) in the collection; rows, for a map-style source.
        shards: the shard names, sorted (the paths relative to the folder or the Hub repository); empty for a
            map-style source.
        epoch: the epoch of the next pair.
        skipped: invalid pairs (and damaged shards) skipped so far (`on_invalid="skip"`), over all epochs.
        cleaning: for a corpus, what its authors' caption cleaning did (`corpora.CorpusReport`); else None.

    Raises:
        PairDataError: the source is not found or not understood, or it has fewer shards (rows) than processes.
    """
    try:
        found = recognise_source(source, accepts=PAIR_KINDS)
    except BenchmarkFormatError as error:
        raise PairDataError(error.reason, where=error.annotation_file) from None
    settings = {
        "rank": rank,
        "world_size": world_size,
        "seed": seed,
        "split": split,
        "revision": revision,
        "image_column": image_column,
        "caption_column": caption_column,
        "on_invalid": on_invalid,
    }
    return _STREAM_OF_KIND[found.kind](source, found, **settings)


_warned_of_old_name = False


def PairStream(*args: Any, **kwargs: Any) -> ShardStream | RowStream:
    """`open_pair_stream` under the name it had before: scripts that call `ivt_hf.data.PairStream(...)` keep
    working, and are told once per process (a `FutureWarning`, shown by default) to use the new name."""
    global _warned_of_old_name
    if not _warned_of_old_name:
        _warned_of_old_name = True
        warnings.warn(
            "ivt_hf.data.PairStream is now ivt_hf.data.open_pair_stream (a function, not a class); the old name "
            "will be removed",
            FutureWarning,
            stacklevel=2,
        )
    return open_pair_stream(*args, **kwargs)


def _image_bytes(value: Any, columns: tuple[str, ...], base: Path | None) -> bytes:
    """The encoded bytes of an image cell: `Image(decode=False)`'s `{"bytes", "path"}`, raw bytes or a path (read
    relative to the local folder `base`; None: a Hub source, whose images must be embedded)."""
    if isinstance(value, str):
        value = {"bytes": None, "path": value}
    if isinstance(value, (bytes, bytearray)):
        value = {"bytes": bytes(value), "path": None}
    if not isinstance(value, dict) or (value.get("bytes") is None and not value.get("path")):
        raise _InvalidPair(f"no image (looked for {' or '.join(map(repr, columns))})")
    if value.get("bytes") is not None:
        if not value["bytes"]:
            raise _InvalidPair("the image is empty (0 bytes)")
        return bytes(value["bytes"])
    if base is None:
        raise _InvalidPair(f"the image has no bytes, only the path {value['path']!r} (embed the images)")
    try:  # a path leading outside the folder (`..`, absolute, a symbolic link out of it) is never read
        path = resolve_under(base, value["path"], what="the image path")
    except PathOutsideRootError as error:
        raise _InvalidPair(str(error)) from None
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _InvalidPair(f"image file {str(path)!r} cannot be read: {error.strerror or error}") from None
    if not data:
        raise _InvalidPair(f"image file {str(path)!r} is empty")
    return data


def _caption_text(value: Any, columns: tuple[str, ...]) -> str:
    if value is None:
        raise _InvalidPair(f"no caption (looked for {' or '.join(map(repr, columns))})")
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise _InvalidPair("the caption is not UTF-8 text") from None
    if not isinstance(value, str):
        raise _InvalidPair(f"the caption should be text, found {type(value).__name__} {value!r:.60}")
    try:
        clean_caption(value)  # a caption that cleaning empties is invalid; the caller cleans with its own word limit
    except ValueError as error:
        raise _InvalidPair(str(error)) from None
    return value


def _json_copy(value: Any) -> Any:
    """A deep copy of nested dicts/lists of JSON values (tuples become lists), so that a state shares nothing."""
    if isinstance(value, dict):
        return {str(key): _json_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_copy(item) for item in value]
    return value
