"""A gallery index whose vectors live in Milvus (`--store milvus:URI`, the `milvus` extra): search past one machine's
memory. The index folder stays what `ivt index build` writes (manifest with paths, footage, model fingerprint, and
`embeddings.safetensors`, the copy a store is rebuilt from); the manifest's `store` record says where the vectors
are searched. `ivt search` then reads the manifest only, never the embeddings, and asks Milvus for the top k, its
filters (`--where`, `--after`, `--before`) turned into a Milvus expression (`filter_expression`).

One code path (`pymilvus.MilvusClient`) for both kinds of store:

- **Milvus Lite** (`milvus:` or `milvus:NAME.db`): an embedded store, a folder `NAME.db` (default `milvus.db`) inside
  the index folder, written in the staging folder with the rest of the index and renamed into place with it.
- **A Milvus server or cluster** (`milvus:http://HOST:19530`, `https://...`, `tcp://...`; a token from the
  `MILVUS_TOKEN` environment variable).

Either takes `?collection=NAME` (default `ivt_` + the index folder's name). The collection has an explicit schema
(`FIELDS`): the int64 primary key is the entry's row in the manifest; the vectors are normalised and compared by
inner product, so scores are cosines as in every other search. `ivt index add` / `ivt index remove` change the store
with the folder (`sync_store`: the rows from the first that changed are deleted and inserted again), so it stays
equal to a fresh build.

**Trust.** An index folder may come from anyone. Its manifest's Milvus Lite file must be a plain `NAME.db` in the
index folder (no other folder, no link out of it); a server URI in a manifest is never connected to unless the user
names a server with `--store` on the command line; a collection is searched or changed only when its property
`ivt_hf.model_fingerprint` names the manifest's model fingerprint, and it must hold as many entries as the manifest
(else it is out of step: build again). A hit's path and footage come from the checked manifest, by row, never from
Milvus. A Lite file itself is read by milvus-lite (JSON, Parquet, FAISS index files).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..atomic import read_json_object
from .entries import entry_camera_names, entry_source, source_targets
from .index import (
    INDEX_MANIFEST,
    GalleryIndex,
    GalleryIndexError,
    IndexNotFoundError,
    SearchHit,
    checked_manifest,
    resolve_under_root,
)

STORE_SCHEME = "milvus:"
DEFAULT_LITE_FILE = "milvus.db"
SERVER_SCHEMES = ("http://", "https://", "tcp://")
INSERT_BATCH = 2048  # rows per insert request
MAX_TOP_K = 16384  # Milvus's limit on k
NO_TIME = -1.0  # the `time` of an entry that has none (times are >= 0)
_TEXT = 65535  # VARCHAR max_length
_LITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.db")
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_FINGERPRINT = "ivt_hf.model_fingerprint"  # the collection property that says ivt_hf made it, and for which model
_USAGE = "milvus:, milvus:NAME.db or milvus:http(s)://HOST:PORT, optionally ?collection=NAME"


class MilvusStoreError(GalleryIndexError):
    """A `--store` that cannot be used, a manifest's store record refused, a store out of step with its index."""


def import_pymilvus():
    """pymilvus, or one line saying how to install it."""
    try:
        import pymilvus
    except ImportError:
        raise MilvusStoreError("a Milvus store needs pymilvus: pip install 'ivt_hf[milvus]'") from None
    return pymilvus


@dataclass(frozen=True)
class StoreSpec:
    """Where a gallery's vectors are: a Milvus server URI, or a Milvus Lite file named in the index folder."""

    server: str | None = None
    lite: str | None = None
    collection: str | None = None

    def record(self) -> dict[str, str | None]:
        """What the manifest keeps (`store`)."""
        return {"kind": "milvus", "uri": self.server or self.lite, "collection": self.collection}

    def describe(self) -> str:
        collection = f"?collection={self.collection}" if self.collection else ""
        return f"{STORE_SCHEME}{self.server or self.lite}{collection}"


def _checked_collection(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _COLLECTION_NAME.fullmatch(name):
        raise MilvusStoreError(f"{where}: a Milvus collection name is letters, digits and _, got {name!r}")
    return name


def parse_store(text: str, index_dir: str | os.PathLike | None = None) -> StoreSpec:
    """`--store`: `milvus:` (Milvus Lite, `milvus.db` in the index folder), `milvus:NAME.db` (a name, or a path in
    `index_dir`), `milvus:http(s)://HOST:PORT` or `milvus:tcp://...` (a server); each with `?collection=NAME`."""
    if not isinstance(text, str) or not text.startswith(STORE_SCHEME):
        raise MilvusStoreError(f"--store must be {_USAGE}; got {text!r}")
    where, _, query = text[len(STORE_SCHEME) :].partition("?")
    collection = None
    if query:
        key, equals, value = query.partition("=")
        if key != "collection" or not equals:
            raise MilvusStoreError(f"--store must be {_USAGE}; got {text!r}")
        collection = _checked_collection(value, f"--store {text}")
    if where.startswith(SERVER_SCHEMES):
        return StoreSpec(server=where, collection=collection)
    folder, name = os.path.split(where or DEFAULT_LITE_FILE)
    in_index = not folder or (
        index_dir is not None and os.path.realpath(folder) == os.path.realpath(os.fspath(index_dir))
    )
    if not in_index or not _LITE_NAME.fullmatch(name):
        raise MilvusStoreError(
            f"--store {text}: a Milvus Lite file is a NAME.db in the index folder (letters, digits, ., _, -)"
        )
    return StoreSpec(lite=name, collection=collection)


def default_collection(index_dir: str | os.PathLike) -> str:
    """`ivt_` + the index folder's name, as a collection name may be spelled."""
    return "ivt_" + re.sub(r"[^A-Za-z0-9_]", "_", Path(os.path.abspath(index_dir)).name)[:200]


def trusted_spec(index_dir: Path, record: Any, named: StoreSpec | None) -> StoreSpec:
    """The store a manifest's `record` names, once it is allowed (module docstring): a Lite file in the index folder,
    a server only when `named` (the user's `--store`) names one. `named`, when given, must be of the same kind."""
    manifest_path = index_dir / INDEX_MANIFEST
    uri = record.get("uri") if isinstance(record, dict) else None
    if not isinstance(record, dict) or record.get("kind") != "milvus" or not isinstance(uri, str):
        raise MilvusStoreError(f"refusing {manifest_path}: its 'store' is not a Milvus store record")
    collection = _checked_collection(record.get("collection"), f"refusing {manifest_path}")
    if uri.startswith(SERVER_SCHEMES):
        if named is None or named.server is None:
            raise MilvusStoreError(
                f"{manifest_path} keeps its vectors on the Milvus server {uri}: an index folder does not choose "
                f"what this machine connects to; pass --store {STORE_SCHEME}{uri} to search there"
            )
        return StoreSpec(server=named.server, collection=named.collection or collection)
    if not _LITE_NAME.fullmatch(uri) or resolve_under_root(index_dir, uri) is None:
        raise MilvusStoreError(
            f"refusing {manifest_path}: its Milvus Lite file {uri!r} is not a NAME.db in the index folder "
            "(an index may only reach its own folder)"
        )
    if not (index_dir / uri).is_dir():
        raise MilvusStoreError(f"{manifest_path} keeps its vectors in the Milvus Lite file {uri}, which is missing")
    _refuse_links(index_dir / uri, manifest_path)
    if named is not None and (named.server is not None or named.lite != uri):
        raise MilvusStoreError(f"--store {named.describe()}: {index_dir} keeps its vectors in {uri} (Milvus Lite)")
    return StoreSpec(lite=uri, collection=collection)


def _refuse_links(lite: Path, manifest_path: Path) -> None:
    """A `MilvusStoreError` when the Lite folder holds a symbolic link, or anything but folders and files: milvus-lite
    reads and writes the files in it (it writes its search index files as it loads), so a link in a downloaded
    index could have it read or write a file outside."""
    for folder, folders, files in os.walk(lite):
        for name in folders + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not (os.path.isdir(path) or os.path.isfile(path)):
                raise MilvusStoreError(
                    f"refusing {manifest_path}: its Milvus Lite file holds {path}, which is not a plain file or folder"
                )


def _read_manifest(directory: Path) -> dict[str, Any]:
    manifest_path = directory / INDEX_MANIFEST
    if not manifest_path.is_file():
        raise IndexNotFoundError(f"not a gallery index folder: {manifest_path} is missing")
    return read_json_object(manifest_path, GalleryIndexError)


def load_store_index(directory: str | os.PathLike, named: StoreSpec | None) -> tuple[GalleryIndex, StoreSpec] | None:
    """An index that keeps its vectors in Milvus, read from its manifest alone (checked as `GalleryIndex.load`
    checks it; its `embeddings` a shape without data, never read), and its store; None for an index without one."""
    directory = Path(directory)
    return _store_index(directory, _read_manifest(directory), named)


def load_searched_index(directory: str | os.PathLike, named: StoreSpec | None) -> tuple[GalleryIndex, StoreSpec | None]:
    """What `ivt search` searches: `load_store_index`'s `(index, store)`, or for an index without a store the whole
    index (`GalleryIndex.load`) and None; the manifest read once either way."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    stored = _store_index(directory, manifest, named)
    return stored if stored is not None else (GalleryIndex.load(directory, manifest=manifest), None)


def _store_index(
    directory: Path, manifest: dict[str, Any], named: StoreSpec | None
) -> tuple[GalleryIndex, StoreSpec] | None:
    import torch

    manifest_path = directory / INDEX_MANIFEST
    if "store" not in manifest:
        if named is not None:
            raise MilvusStoreError(f"{directory} keeps no Milvus store: build it with `ivt index build --store ...`")
        return None
    spec = trusted_spec(directory, manifest["store"], named)
    paths, footage = checked_manifest(directory, manifest)
    hidden = manifest.get("hidden_size")
    if not isinstance(hidden, int) or hidden < 1 or manifest.get("num_images") != len(paths):
        raise GalleryIndexError(f"{manifest_path}: its hidden_size / num_images do not describe its paths")
    shape_only = torch.empty(len(paths), hidden, device="meta")  # what `check_model` reads: the hidden size
    return GalleryIndex(shape_only, paths, manifest, directory=directory, footage=footage), spec


# ------------------------------------------------------------------------------------------------ filters


def milvus_literal(value: str) -> str:
    """`value` as a Milvus string literal: quoted, its backslashes, quotes and line breaks escaped, so that no value
    can end the literal and add to the expression. Other control characters are refused (Milvus has no escape for
    them that every version reads)."""
    if any((ord(char) < 32 and char not in "\n\t\r") or ord(char) == 127 for char in value):
        raise MilvusStoreError(f"a filter value with a control character cannot be searched in Milvus: {value!r}")
    for char, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\t", "\\t"), ("\r", "\\r")):
        value = value.replace(char, escaped)
    return f'"{value}"'


def _source_clause(target: str) -> str:
    """Entries from the file `target` or from under the folder `target`: a string range, not LIKE (whose wildcards
    `%` and `_` are in file names, and whose escapes differ between Milvus versions)."""
    folder = target if target.endswith("/") else target + "/"
    upper = folder[:-1] + "0"  # "0" follows "/": every string that starts with `folder` sorts below this one
    within = f"source >= {milvus_literal(folder)} and source < {milvus_literal(upper)}"
    return f"source == {milvus_literal(target)} or ({within})"


def filter_expression(*, sources=(), cameras=(), after: float | None = None, before: float | None = None) -> str:
    """`select_entries`'s filters as a Milvus expression ("" for none): from one of `sources` (files or folders),
    of one of `cameras`, at a time from `after` to `before` inclusive (an entry without a time never passes)."""
    clauses = []
    targets = [str(target) for target in source_targets(sources)]
    if targets:
        clauses.append(" or ".join(f"({_source_clause(target)})" for target in targets))
    if cameras:
        names = [milvus_literal(camera) for camera in cameras]
        clauses.append(" or ".join(f"camera == {name} or source_name == {name}" for name in names))
    if after is not None or before is not None:
        clauses.append(f"time >= {np.format_float_positional(float(after or 0.0), trim='0')}")
        if before is not None:
            clauses.append(f"time <= {np.format_float_positional(float(before), trim='0')}")
    return " and ".join(f"({clause})" for clause in clauses)


# ------------------------------------------------------------------------------------------------ the store


def _entry_rows(index: GalleryIndex, start: int, stop: int, cache: dict) -> list[dict[str, Any]]:
    """The Milvus rows of entries `start` to `stop` (`FIELDS`): what the filters compare, as `select_entries` sees
    it (`entry_source`, `entry_camera_names`)."""
    vectors = np.ascontiguousarray(index.embeddings[start:stop], dtype=np.float32)  # a tensor's, or a mapped file's
    rows = []
    for number, vector in zip(range(start, stop), vectors):
        record = index.footage[number] or {}
        camera, source_name = entry_camera_names(index, number)
        time_s = record.get("time_s")
        rows.append(
            {
                "id": number,
                "vector": vector,
                "path": index.paths[number],
                "source": entry_source(index, number, cache),
                "camera": camera,
                "source_name": source_name or "",
                "time": NO_TIME if time_s is None else float(time_s),
                "frame": int(record.get("frame", -1)),
                "track": int(record.get("track", -1)),
            }
        )
    return rows


class MilvusStore:
    """One collection of one Milvus (Lite file or server), through `pymilvus.MilvusClient`; use it as a context."""

    def __init__(self, spec: StoreSpec, folder: Path):
        """`folder`: where a Lite file lies (the index folder, or the staging folder being written)."""
        pymilvus = import_pymilvus()
        self.spec, self.name = spec, spec.collection
        self.uri = spec.server or str(Path(folder) / spec.lite)
        try:
            self.client = pymilvus.MilvusClient(uri=self.uri, token=os.environ.get("MILVUS_TOKEN", ""))
        except pymilvus.MilvusException as error:
            raise MilvusStoreError(f"cannot open the Milvus store {spec.describe()}: {error}") from None

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc_info) -> None:
        """Close the connection; a Lite file's in-process server is stopped too, which frees the file's lock (the
        staging folder is renamed, the next command opens it again)."""
        self.client.close()
        if self.spec.lite is not None:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.uri)

    def create(self, dim: int, fingerprint: str, *, overwrite: bool = False) -> None:
        """A new collection for vectors of `dim` (a FLAT inner-product index: exact); an existing one is replaced
        only with `overwrite` and only when ivt_hf made it."""
        from pymilvus import DataType, MilvusClient

        if self.may_create(overwrite=overwrite):
            self.client.drop_collection(self.name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        for name in ("path", "source", "camera", "source_name"):
            schema.add_field(name, DataType.VARCHAR, max_length=_TEXT)
        schema.add_field("time", DataType.DOUBLE)
        schema.add_field("frame", DataType.INT64)
        schema.add_field("track", DataType.INT64)
        params = self.client.prepare_index_params()
        params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        properties = {_FINGERPRINT: fingerprint}
        self.client.create_collection(self.name, schema=schema, index_params=params, properties=properties)

    def may_create(self, *, overwrite: bool) -> bool:
        """Whether a collection of this name is there to be replaced; a `MilvusStoreError` when it is there and
        may not be (no `overwrite`, or not ivt_hf's)."""
        if not self.client.has_collection(self.name):
            return False
        if not (overwrite and _FINGERPRINT in self._properties()):
            raise MilvusStoreError(
                f"the Milvus collection {self.spec.describe()} exists already; pass --overwrite to replace it "
                "(only a collection ivt_hf made is replaced), or name another with ?collection=NAME"
            )
        return True

    def _properties(self) -> dict[str, Any]:
        return dict(self.client.describe_collection(self.name).get("properties") or {})

    def check(self, index: GalleryIndex) -> None:
        """A `MilvusStoreError` unless the collection is the one ivt_hf made for `index`'s model and holds as many
        entries as its manifest."""
        if not self.client.has_collection(self.name):
            raise MilvusStoreError(
                f"the Milvus collection {self.spec.describe()} does not exist: build the index again"
            )
        if self._properties().get(_FINGERPRINT) != index.manifest.get("model_fingerprint"):
            raise MilvusStoreError(
                f"the Milvus collection {self.spec.describe()} is not the one ivt_hf made for {index.directory} "
                f"(its {_FINGERPRINT} property names another model, or none)"
            )
        self.client.load_collection(self.name)
        count = self.client.query(self.name, filter="", output_fields=["count(*)"])[0]["count(*)"]
        if count != len(index):
            raise MilvusStoreError(
                f"the Milvus collection {self.spec.describe()} holds {count} entries and {index.directory}'s "
                f"manifest {len(index)}: the store is out of step with the index; build it again"
            )

    def insert(self, index: GalleryIndex, start: int = 0, *, progress: bool = True) -> None:
        """Entries `start` to the end of `index`, `INSERT_BATCH` rows a request."""
        cache: dict = {}
        total = len(index) - start
        with tqdm(total=total, desc="storing in Milvus", unit="vec", disable=not progress or total < 10000) as bar:
            for first in range(start, len(index), INSERT_BATCH):
                stop = min(first + INSERT_BATCH, len(index))
                self.client.insert(self.name, _entry_rows(index, first, stop, cache))
                bar.update(stop - first)

    def delete_from(self, first: int) -> None:
        """Every entry from row `first` on."""
        self.client.delete(self.name, filter=f"id >= {int(first)}")

    def search(self, index: GalleryIndex, queries: np.ndarray, k: int, expression: str = "") -> list[list[SearchHit]]:
        """Top-k hits of each normalised query among the entries that pass `expression`; paths and footage from
        `index`'s checked manifest, by row."""
        limit = min(k, len(index), MAX_TOP_K)
        found = self.client.search(
            self.name,
            data=np.ascontiguousarray(queries, dtype=np.float32),
            limit=limit,
            filter=expression,
            output_fields=["id"],
            search_params={"metric_type": "IP"},
        )
        results = []
        for hits in found:
            rows = [(int(hit["id"]), float(hit["distance"])) for hit in hits]
            if any(not 0 <= row < len(index) for row, _ in rows):
                raise MilvusStoreError(f"the Milvus collection {self.spec.describe()} holds rows its manifest has not")
            results.append(
                [
                    SearchHit(index.paths[row], score, rank + 1, index.footage[row])
                    for rank, (row, score) in enumerate(rows)
                ]
            )
        return results


def _settle_lite(spec: StoreSpec, folder: Path) -> None:
    """Open a Lite file once more and load it, so that milvus-lite writes its search index files now, in the staging
    folder (listed in the output marker), not at the first search (files the marker does not know)."""
    if spec.lite is not None:
        with MilvusStore(spec, folder) as store:
            store.client.load_collection(store.name)


def write_store(
    index: GalleryIndex,
    staging: Path,
    spec: StoreSpec,
    *,
    index_dir: Path,
    overwrite: bool = False,
    progress: bool = True,
) -> StoreSpec:
    """Put `index`'s vectors in a new collection (a Lite file in `staging`, the folder being written for
    `index_dir`), and record the store in its manifest (call before `index.save(staging)`)."""
    spec = replace(spec, collection=spec.collection or default_collection(index_dir))
    with MilvusStore(spec, staging) as store:
        store.create(int(index.embeddings.shape[1]), index.manifest["model_fingerprint"], overwrite=overwrite)
        store.insert(index, progress=progress)
    _settle_lite(spec, staging)
    index.manifest["store"] = spec.record()
    return spec


def sync_store(
    index_dir: Path,
    staging: Path,
    old: GalleryIndex,
    new: GalleryIndex,
    named: StoreSpec | None,
    progress: bool = True,
) -> None:
    """Make the store of `old` (an index with one, in `index_dir`) hold `new`'s entries, as a fresh build would:
    the rows from the first one that differs are deleted and `new`'s from there inserted. A Lite file is changed
    as a copy in `staging`, so the old index keeps its own until the new folder replaces it."""
    spec = trusted_spec(index_dir, old.manifest["store"], named)
    folder = index_dir
    if spec.lite is not None:
        folder = staging
        shutil.rmtree(staging / spec.lite, ignore_errors=True)  # hard links of the old files (`_carry_gallery`)
        shutil.copytree(index_dir / spec.lite, staging / spec.lite, symlinks=True)
    same = min(len(old), len(new))
    first = next(
        (row for row in range(same) if (old.paths[row], old.footage[row]) != (new.paths[row], new.footage[row])),
        same,
    )
    with MilvusStore(spec, folder) as store:
        store.check(old)
        if first < len(old):
            store.delete_from(first)
        store.insert(new, first, progress=progress)
    _settle_lite(spec, folder)
    new.manifest["store"] = old.manifest["store"]


__all__ = [
    "MilvusStore",
    "MilvusStoreError",
    "StoreSpec",
    "default_collection",
    "filter_expression",
    "load_searched_index",
    "load_store_index",
    "milvus_literal",
    "parse_store",
    "sync_store",
    "trusted_spec",
    "write_store",
]
