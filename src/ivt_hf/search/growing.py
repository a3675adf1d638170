"""Galleries that grow: `ivt index add` and `ivt index remove` change an index in place without encoding again what
it holds, and `ivt search --where/--after/--before` searches a part of it.

- **Add** (`add_images`, `add_footage`): only images (or footage sources) the index does not hold yet are encoded,
  with the model that built the index (a model with another fingerprint is refused, as `ivt search` refuses it);
  the new entries follow the old ones. An image index whose root does not hold the new folder moves its root up to
  the folder both share, its entries prefixed accordingly, so that it equals a fresh build of that folder.
- **Remove** (`remove_entries`): entries whose file is gone (`missing`) or that come from a source (an image file,
  a folder of images, a video, a folder of frames: `source_matches`).
- **Atomic**: the new index is written into a staging folder beside the old one and renamed into place with
  ivt_hf's output marker (`ivt_hf.outputs.writing_output_dir`), so a failure (a full disk included) leaves the old
  index as it was; only a folder that is wholly ivt_hf's is changed. A footage index's crops and frames are carried
  over as hard links (no copy), those of removed entries left behind.
- **FAISS cache**: kept only where it is still exact: a `flat` index is extended with the added vectors and saved
  under the new embeddings' digest; every other cache file (ivf, hnsw, or after a removal) is left out and built
  again by the next search. A cache file is read only when its header names the digest of the embeddings searched
  (`faiss_cache.load_faiss_cache`), so an old file can never answer for a changed index.
- **Filters** (`select_entries`, `search_selected`): by source and camera (the first folder under the gallery root:
  a camera folder of images, a footage source's folder `STEM-DIGEST`, which also answers to the video's or frame
  folder's own name), and by time (`after` / `before`, seconds into the footage, both inclusive; entries without
  a time are left out of a time filter).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import read_json_object, refusals_naming
from ..errors import IVTInputError
from ..outputs import MARKER, foreign_files, read_marker, writing_output_dir
from .entries import entry_camera, select_entries, source_matches, source_targets
from .faiss_cache import (
    FAISS_CACHE_DIR,
    _cache_header,
    _read_cache_header,
    embeddings_digest,
    faiss_cache_path,
    load_faiss_cache,
    save_faiss_cache,
)
from .index import (
    INDEX_EMBEDDINGS,
    INDEX_MANIFEST,
    GalleryIndex,
    GalleryIndexError,
    encode_image_files,
    find_images,
    resolve_under_root,
)

FOOTAGE_GALLERY = "gallery"  # `footage_index.GALLERY`: not imported, that module needs the video extra
# what `faiss_cache.save_faiss_cache` writes (`faiss_cache_path`), and its temporary file of a killed search
_CACHE_NAME = r"(?:flat|ivf|hnsw|ivfpq)-[0-9a-f]{16}\.faiss"
_FAISS_CACHE_FILE = re.compile(rf"{FAISS_CACHE_DIR}/(?:{_CACHE_NAME}|\.{_CACHE_NAME}\.tmp-\d+-[0-9a-f]{{8}})")
_INDEX_FILES = {INDEX_EMBEDDINGS, INDEX_MANIFEST, MARKER, FAISS_CACHE_DIR}


@dataclass
class ChangeReport:
    """What an add or a remove did to an index."""

    index_dir: Path
    added: int = 0
    removed: int = 0
    already: list[str] = field(default_factory=list)  # what was asked for and is in the index already
    skipped: list[dict[str, str]] = field(default_factory=list)
    entries: int = 0
    written: bool = False

    def summary(self) -> str:
        lines = []
        if self.already:
            lines.append(f"{len(self.already)} already in the index, not added again (first: {self.already[0]})")
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        change = f"added {self.added}{skipped}, removed {self.removed}"
        where = f"{self.index_dir} now holds {self.entries} entries" if self.written else f"{self.index_dir} unchanged"
        lines.append(f"{change}: {where}")
        return "\n".join(lines)


def _refuse_foreign_index(index_dir: Path) -> None:
    """One line unless `index_dir` is an index folder that ivt_hf wrote and nobody added a file to."""
    if not (index_dir / INDEX_MANIFEST).is_file():
        raise GalleryIndexError(f"not a gallery index folder: {index_dir / INDEX_MANIFEST} is missing")
    if not _written_by_ivt_hf(index_dir):
        raise GalleryIndexError(
            f"refusing to change {index_dir}: it is not a folder that ivt_hf wrote whole (no valid {MARKER}, or "
            "files of someone else's in it); build the index again with `ivt index build`"
        )


def _written_by_ivt_hf(index_dir: Path) -> bool:
    """Whether ivt_hf wrote every file of `index_dir`: its marker lists them, or they are the FAISS cache that
    searches keep in `faiss/` (derived data, written after the marker)."""
    if read_marker(index_dir) is None:
        return False
    return all(_FAISS_CACHE_FILE.fullmatch(name) for name in foreign_files(index_dir))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _carry_gallery(old_dir: Path, staging: Path, keep: set[str] | None) -> None:
    """Everything of the old folder besides the index's own files, hard-linked into `staging`; with `keep` (the
    files under `gallery/` that entries still name) only those of a footage gallery."""
    for item in old_dir.iterdir():
        if item.name in _INDEX_FILES:
            continue
        if item.is_dir() and not item.is_symlink():
            ignore = _unnamed(item, keep) if keep is not None and item.name == FOOTAGE_GALLERY else None
            shutil.copytree(
                item, staging / item.name, copy_function=_link_or_copy, ignore=ignore, symlinks=True, dirs_exist_ok=True
            )
        else:
            _link_or_copy(str(item), str(staging / item.name))
    if keep is not None:  # the folders of a removed source, left empty
        for folder, _, _ in os.walk(staging / FOOTAGE_GALLERY, topdown=False):
            if not os.listdir(folder):
                os.rmdir(folder)


def _unnamed(gallery: Path, keep: set[str]) -> Callable[[str, list[str]], list[str]]:
    """A `copytree` ignore: the files under `gallery` that are not in `keep` (paths relative to it)."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        relative = os.path.relpath(folder, gallery)
        return [
            name
            for name in names
            if not os.path.isdir(os.path.join(folder, name))
            and os.path.normpath(os.path.join(relative, name)) not in keep
        ]

    return ignore


def _footage_files(index: GalleryIndex) -> set[str] | None:
    """The files under a footage index's gallery that its entries name (crops, frames, videos); None otherwise."""
    if index.manifest.get("root") is None or not any(index.footage):
        return None
    names = set(map(os.path.normpath, index.paths))
    for record in index.footage:
        if record:
            names.update(os.path.normpath(record[key]) for key in ("frame_file", "video_file") if record[key])
    return names


def _carry_faiss(old: GalleryIndex, new: GalleryIndex, staging: Path, appended: torch.Tensor | None) -> None:
    """A `flat` FAISS cache of `old` extended with `appended` (the rows added after the old ones) and saved for
    `new`; nothing else is carried (built again by the next search)."""
    folder = old.directory / FAISS_CACHE_DIR if old.directory is not None else None
    if appended is None or folder is None or not folder.is_dir():
        return
    old_digest, new_digest = embeddings_digest(old.embeddings), embeddings_digest(new.embeddings)
    count, dim = old.embeddings.shape
    for path in sorted(folder.glob("*.faiss")):
        with open(path, "rb") as handle:
            header = _read_cache_header(handle)
        key = header.get("key") if header else None
        if not isinstance(key, dict) or key != {"kind": "flat"}:
            continue
        index = load_faiss_cache(path, _cache_header(key, old_digest, count, dim))
        if index is None:
            continue
        index.add(appended.float().contiguous().numpy())
        new_header = _cache_header(key, new_digest, len(new), dim)
        save_faiss_cache(index, faiss_cache_path(staging, key), new_header)


def _rewrite(index_dir: Path, command: str, change: Callable[[GalleryIndex, Path], Any], store=None) -> GalleryIndex:
    """Apply `change` ((old index, staging folder) -> (new index, rows appended or None)) under the folder's lock
    and put the new index in place all at once; the old one stays if anything fails. `change` returning None writes
    nothing (`_NothingToWrite`). An index that keeps its vectors in Milvus has its store changed to match
    (`milvus_store.sync_store`; `store`: the `--store` the user named, needed for a server)."""
    _refuse_foreign_index(index_dir)
    with (
        refusals_naming(index_dir),  # safetensors' "No space left on device" names no file: name the index
        writing_output_dir(index_dir, overwrite=True, command=command, ours=_written_by_ivt_hf) as staging,
    ):
        old = GalleryIndex.load(index_dir)
        result = change(old, staging)
        if result is None:
            raise _NothingToWrite
        new, appended = result
        _keep_relative_root(index_dir, old, new)
        _carry_gallery(index_dir, staging, _footage_files(new))
        if "store" in old.manifest:
            from .milvus_store import sync_store

            sync_store(index_dir, staging, old, new, store)
        new.save(staging)
        _carry_faiss(old, new, staging, appended)
        return new


def _keep_relative_root(index_dir: Path, old: GalleryIndex, new: GalleryIndex) -> None:
    """A gallery root that the manifest names relative to the index folder (a footage index's `gallery`, a Space's)
    stays so, for the folder to stay movable; `load` gave it as an absolute path. Such a root cannot move up."""
    recorded = read_json_object(index_dir / INDEX_MANIFEST, GalleryIndexError).get("root")
    if recorded is not None and os.path.isabs(recorded):
        return
    if new.manifest["root"] != old.manifest["root"]:
        raise GalleryIndexError(
            f"the gallery of {index_dir} lies inside it ({recorded or '.'}): what is added must lie under "
            f"{old.manifest['root']}"
        )
    new.manifest["root"] = recorded


class _NothingToWrite(Exception):
    """Raised inside the writer to leave the folder untouched (the staging folder is removed)."""


def _rewrite_or_keep(index_dir: Path, command: str, change, store=None) -> GalleryIndex | None:
    try:
        return _rewrite(index_dir, command, change, store)
    except _NothingToWrite:
        return None


def _encoder_of(index: GalleryIndex, model):
    """`model`, once it is known to be the one that built `index`, prepared as the build prepared it (its dtype)."""
    from ..evaluation.encoding import prepare_for_inference

    index.check_model(model)
    return prepare_for_inference(model, index.manifest.get("dtype", "float32"))


def _manifest_with(manifest: dict[str, Any], embeddings: torch.Tensor, **changes: Any) -> dict[str, Any]:
    return {**manifest, **changes, "num_images": int(embeddings.shape[0]), "hidden_size": int(embeddings.shape[1])}


def add_images(
    model,
    processor,
    index_dir: str | os.PathLike,
    images: str | os.PathLike,
    *,
    batch_size: int = 64,
    on_invalid: str = "error",
    progress: bool = True,
    store=None,
) -> ChangeReport:
    """Encode the images under `images` that `index_dir` does not hold yet and append them (see the module
    docstring). Images the index skipped before are tried again. `store`: the Milvus server the user named
    (`milvus_store.StoreSpec`), for an index that keeps its vectors there."""
    index_dir, folder = Path(index_dir), Path(images).resolve()
    paths = find_images(folder)
    report = ChangeReport(index_dir)

    def change(old: GalleryIndex, staging: Path):
        if any(old.footage):
            raise GalleryIndexError(f"{index_dir} is an index of footage: add to it with --video / --frames")
        encoder = _encoder_of(old, model)
        old_root = Path(old.manifest["root"])
        root = Path(os.path.commonpath([old_root, folder]))
        prefix = old_root.relative_to(root)
        held = [str(prefix / path) if str(prefix) != "." else path for path in old.paths]
        known = set(map(os.path.normpath, held))
        new_paths = [path for path in paths if os.path.normpath(str(path.relative_to(root))) not in known]
        report.already = [str(path) for path in paths if path not in new_paths]
        if not new_paths:
            return None
        retried = {str(path) for path in new_paths}
        embeddings, readable, report.skipped = encode_image_files(
            encoder, processor, new_paths, on_invalid=on_invalid, batch_size=batch_size, progress=progress
        )
        report.added = len(readable)
        if not readable:  # only images that were skipped before, and still are
            return None
        joined = torch.cat([old.embeddings, embeddings.float()])
        skipped = [item for item in old.skipped if item["path"] not in retried] + report.skipped
        manifest = _manifest_with(old.manifest, joined, root=str(root), skipped=skipped)
        new = GalleryIndex(joined, held + [str(path.relative_to(root)) for path in readable], manifest)
        return new, embeddings

    new = _rewrite_or_keep(index_dir, "ivt index add", change, store)
    report.written, report.entries = new is not None, len(new) if new is not None else 0
    return report


def search_selected(index: GalleryIndex, rows: Sequence[int], texts, model, processor, *, k: int = 10, faiss=None):
    """`GalleryIndex.search` over the entries `rows` only (an in-memory index of them: a FAISS index over a part is
    built for this search, never cached)."""
    if not rows:
        raise IVTInputError("no entry of the index passes the filters (--where, --after, --before)")
    from ..evaluation.encoding import encode_texts

    texts = [texts] if isinstance(texts, str) else list(texts)
    index.check_model(model)
    part = GalleryIndex(
        index.embeddings[list(rows)],
        [index.paths[row] for row in rows],
        index.manifest,
        footage=[index.footage[row] for row in rows],
    )
    queries = encode_texts(model, processor, texts, progress=False)
    return part.search_embeddings(queries, k=k, faiss=faiss)


def remove_entries(
    index_dir: str | os.PathLike, *, missing: bool = False, sources: Sequence[str | os.PathLike] = (), store=None
) -> ChangeReport:
    """Drop the entries whose file is gone (`missing`) or that come from one of `sources` (files or folders); the
    index left must hold at least one entry. `store`: as for `add_images`."""
    if not missing and not sources:
        raise IVTInputError("say what to remove: --missing, or --source FILE_OR_DIR")
    index_dir, targets = Path(index_dir), source_targets(sources)
    report = ChangeReport(index_dir)

    def change(old: GalleryIndex, staging: Path):
        root, cache = old.manifest["root"], {}
        drop = set(select_entries(old, sources=targets)) if targets else set()
        if missing:
            for number, path in enumerate(old.paths):
                found = resolve_under_root(root, path, cache=cache)
                if found is None or not os.path.isfile(found):
                    drop.add(number)
        if not drop:
            return None
        if len(drop) == len(old):
            raise GalleryIndexError(f"that would remove all {len(old)} entries of {index_dir}; nothing was changed")
        keep = [number for number in range(len(old)) if number not in drop]
        report.removed = len(drop)
        skipped = [
            item
            for item in old.skipped
            if not (targets and source_matches(str(Path(item["path"]).absolute()), targets))
            and not (missing and not os.path.exists(item["path"]))
        ]
        embeddings = old.embeddings[keep]
        changes: dict[str, Any] = {"skipped": skipped}
        if "footage_sources" in old.manifest and targets:
            kept = [item for item in old.manifest["footage_sources"] if not source_matches(item["source"], targets)]
            changes["footage_sources"] = kept
        footage = [old.footage[number] for number in keep]
        new = GalleryIndex(
            embeddings,
            [old.paths[number] for number in keep],
            _manifest_with(old.manifest, embeddings, **changes),
            footage=footage if any(footage) else None,
        )
        return new, None

    new = _rewrite_or_keep(index_dir, "ivt index remove", change, store)
    report.written, report.entries = new is not None, len(new) if new is not None else 0
    return report


def add_footage(
    model,
    processor,
    index_dir: str | os.PathLike,
    *,
    detector,
    videos: Sequence[str | os.PathLike] = (),
    frame_folders: Sequence[str | os.PathLike] = (),
    settings=None,
    batch_size: int = 64,
    progress: bool = True,
    store=None,
) -> ChangeReport:
    """Find the people in footage sources that `index_dir` (an index of footage) does not hold yet, and append
    their crops, as `build_footage_index` would have indexed them. A source that cannot be read whole is an error
    (nothing is written)."""
    from ..footage import FootageReadError, FootageSettings, extract_people, footage_sources

    index_dir = Path(index_dir)
    sources = footage_sources(videos, frame_folders)
    report = ChangeReport(index_dir)

    def change(old: GalleryIndex, staging: Path):
        if not any(old.footage):
            raise GalleryIndexError(f"{index_dir} is an index of images, not footage: add to it with --images")
        encoder = _encoder_of(old, model)
        held = {item["key"] for item in old.manifest.get("footage_sources", [])}
        fresh = [source for source in sources if source.key not in held]
        report.already = [str(source.path) for source in sources if source.key in held]
        if not fresh:
            return None
        used = settings or FootageSettings(**_settings_of(old.manifest))
        entries, found = extract_people(fresh, staging / FOOTAGE_GALLERY, detector, used, progress=progress)
        for item in found:
            if item.error:
                raise FootageReadError(item.error, path=item.source)
        report.added = len(entries)
        if not entries:
            return None
        crops = [staging / FOOTAGE_GALLERY / entry.path for entry in entries]
        embeddings, _, _ = encode_image_files(encoder, processor, crops, batch_size=batch_size, progress=progress)
        joined = torch.cat([old.embeddings, embeddings.float()])
        sources_kept = old.manifest.get("footage_sources", []) + [asdict(item) for item in found]
        manifest = _manifest_with(old.manifest, joined, footage_sources=sources_kept)
        paths = old.paths + [entry.path for entry in entries]
        new = GalleryIndex(joined, paths, manifest, footage=old.footage + [entry.record() for entry in entries])
        return new, embeddings

    new = _rewrite_or_keep(index_dir, "ivt index add", change, store)
    report.written, report.entries = new is not None, len(new) if new is not None else 0
    return report


def _settings_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The `FootageSettings` fields an index of footage was built with (its `footage_settings`, less the detector)."""
    recorded = dict(manifest.get("footage_settings") or {})
    recorded.pop("detector", None)
    return recorded


__all__ = [
    "ChangeReport",
    "add_footage",
    "add_images",
    "entry_camera",
    "remove_entries",
    "search_selected",
    "select_entries",
    "source_matches",
    "source_targets",
]
