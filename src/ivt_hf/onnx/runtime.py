"""The onnxruntime encoder of an exported folder (`ivt export onnx`): the same embeddings as the PyTorch model, with
no torch imported, so that search, evaluation and the page run where only onnxruntime is installed.

`IVTOnnxEncoder` answers what search and evaluation ask of a model: `config` (the folder's `IVTConfig`), the
fingerprint of the PyTorch model it was exported from (an index built with one is searched with the other, and a
different model is refused), and `encode_images` / `encode_texts` (L2-normalised float32 arrays, batch by batch);
`ivt_hf.evaluation.encoding` hands it those calls when it is the model (`runtime == "onnx"`).

The folder is checked before a session is made: its manifest (`ivt_onnx.json`), then each ONNX file's size and
SHA-256 against it, so a truncated or corrupted file is one error naming it, not onnxruntime's protobuf message.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputNotFoundError, IVTInputError

ONNX_MANIFEST = "ivt_onnx.json"
IMAGE_FILE, TEXT_FILE = "image_encoder.onnx", "text_encoder.onnx"
EXPORT_DTYPES = ("fp32", "int8", "fp16")
FORMAT = "ivt_hf-onnx"
FORMAT_VERSION = 1


class MissingExtraError(IVTInputError):
    """A command needs an optional dependency that is not installed; the message names the extra."""


class OnnxFolderError(IVTInputError):
    """An ONNX folder that cannot be used: not an export, a file missing, truncated or changed, or a runtime that does
    not fit it (the message names the folder or file)."""


def is_onnx_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder written by `ivt export onnx` (it holds the manifest)."""
    return (Path(path) / ONNX_MANIFEST).is_file()


def write_manifest(folder: Path, *, fingerprint: str, dtype: str, source: str, config) -> dict[str, int]:
    """Write `ivt_onnx.json` into an export folder (its ONNX files written); returns each file's size in bytes."""
    files = {name: {"bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)} for name in _FILES}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": source,
        "model_fingerprint": fingerprint,
        "dtype": dtype,
        "hidden_size": config.hidden_size,
        "image_size": list(config.image_size),
        "max_text_length": config.max_position_embeddings,
        "files": files,
    }
    (folder / ONNX_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return {name: entry["bytes"] for name, entry in files.items()}


_FILES = (IMAGE_FILE, TEXT_FILE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The checked manifest of an export folder; `OnnxFolderError` naming the folder or file otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"ONNX model folder not found: {folder}")
    path = folder / ONNX_MANIFEST
    if not path.is_file():
        hint = " (a PyTorch model folder: pass --runtime torch, or export it with ivt export onnx)"
        raise OnnxFolderError(
            f"{folder} is not an ONNX export of ivt_hf: it has no {ONNX_MANIFEST}"
            + (hint if (folder / "config.json").is_file() else "")
        )
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OnnxFolderError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OnnxFolderError(f"{path} is not an ivt_hf ONNX manifest")
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("dtype") not in EXPORT_DTYPES:
        raise OnnxFolderError(
            f"{path}: unsupported export (format_version {manifest.get('format_version')!r}, dtype "
            f"{manifest.get('dtype')!r}); export the model again with this ivt_hf"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(_FILES):
        raise OnnxFolderError(f"{path} must list {IMAGE_FILE} and {TEXT_FILE}")
    return manifest


def check_onnx_file(folder: Path, name: str, recorded: dict[str, Any]) -> Path:
    """The path of an export's ONNX file once its size and SHA-256 are those the export recorded."""
    path = folder / name
    if not path.is_file():
        raise OnnxFolderError(f"{path} is missing: the export folder is incomplete; export the model again")
    size = path.stat().st_size
    if size != recorded.get("bytes"):
        raise OnnxFolderError(
            f"{path} is {size} bytes but the export wrote {recorded.get('bytes')}: the file is truncated or "
            "damaged; copy or export it again"
        )
    if _sha256(path) != recorded.get("sha256"):
        raise OnnxFolderError(
            f"{path} is not the file the export wrote (its SHA-256 differs): it is corrupted or was changed; copy "
            "or export it again"
        )
    return path


def _onnxruntime():
    if importlib.util.find_spec("onnxruntime") is None:
        raise MissingExtraError("the ONNX runtime needs onnxruntime, in the onnx extra: pip install 'ivt_hf[onnx]'")
    import onnxruntime

    return onnxruntime


class IVTOnnxEncoder:
    """The two encoders of an export folder in onnxruntime sessions (module docstring).

    `providers`: onnxruntime's execution providers (default: CUDA for an fp16 export, else the CPU); `threads`:
    onnxruntime's intra-op threads (default: its own choice, all cores). `check_files=False` skips the manifest
    (the exporter's own check of a folder it is still writing).
    """

    runtime = "onnx"

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        check_files: bool = True,
    ):
        from ..model.configuration_ivt import IVTConfig

        ort = _onnxruntime()
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder) if check_files else {"dtype": "fp32", "model_fingerprint": None}
        self.dtype = self.manifest["dtype"]
        self._ivt_fingerprint = self.manifest["model_fingerprint"]  # `model_fingerprint` reads it
        self.config = IVTConfig.from_pretrained(self.folder)
        self.config._name_or_path = str(self.folder)
        providers = list(providers or (["CUDAExecutionProvider"] if self.dtype == "fp16" else ["CPUExecutionProvider"]))
        missing = [name for name in providers if name not in ort.get_available_providers()]
        if missing:
            needs = (
                " (an fp16 export runs on a GPU; on a CPU export --dtype fp32 or int8)" if self.dtype == "fp16" else ""
            )
            raise OnnxFolderError(
                f"{self.folder} needs onnxruntime's {', '.join(missing)}, which this onnxruntime does not have{needs}"
            )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.sessions = {}
        for name in _FILES:
            path = (
                check_onnx_file(self.folder, name, self.manifest["files"][name]) if check_files else self.folder / name
            )
            try:
                self.sessions[name] = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as error:  # onnxruntime's InvalidProtobuf / Fail / InvalidGraph, naming no file
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise OnnxFolderError(f"{path} is not a loadable ONNX model ({first})") from None

    def to(self, device=None) -> IVTOnnxEncoder:
        """The sessions already run where their providers say (what `build_index` asks of a model)."""
        return self

    def image_embeddings(self, pixel_values: np.ndarray) -> np.ndarray:
        """L2-normalised float32 `(batch, hidden)` embeddings of processed images `(batch, 3, H, W)`."""
        expected = (self.config.num_channels, *self.config.image_size)
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise IVTInputError(
                f"pixel_values must have shape (batch, {', '.join(map(str, expected))}), got {pixel_values.shape}"
            )
        session = self.sessions[IMAGE_FILE]
        (features,) = session.run(None, {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)})
        return _normalised(features)

    def text_embeddings(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """L2-normalised float32 `(batch, hidden)` embeddings of tokenised texts `(batch, length)`."""
        limit = self.config.max_position_embeddings
        if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape or not 1 <= input_ids.shape[1] <= limit:
            raise IVTInputError(
                f"input_ids and attention_mask must both be (batch, length) with 1 <= length <= {limit}, got "
                f"{input_ids.shape} and {attention_mask.shape}"
            )
        inputs = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        (features,) = self.sessions[TEXT_FILE].run(None, inputs)
        return _normalised(features)

    def encode_images(
        self, images, processor, *, batch_size: int = 64, progress: bool = True, description: str = "encoding images"
    ) -> np.ndarray:
        """`(len(images), hidden)` normalised embeddings of anything the processor takes, or of a `datasets.Dataset`
        with an `image` column (decoded batch by batch), as `ivt_hf.evaluation.encoding.encode_images`."""

        def embed(start: int, stop: int) -> np.ndarray:
            batch = images[start:stop]
            if isinstance(batch, dict):  # a datasets.Dataset slice
                batch = batch["image"]
            pixel_values = processor.image_processor(list(batch), return_tensors="np")["pixel_values"]
            return self.image_embeddings(np.asarray(pixel_values))

        return self._in_batches(len(images), batch_size, embed, progress, description)

    def encode_texts(
        self,
        texts: Sequence[str],
        processor,
        *,
        batch_size: int = 256,
        max_length: int | None = None,
        progress: bool = True,
        description: str = "encoding captions",
    ) -> np.ndarray:
        """`(len(texts), hidden)` normalised embeddings, as `ivt_hf.evaluation.encoding.encode_texts`."""
        texts = list(texts)

        def embed(start: int, stop: int) -> np.ndarray:
            encoded = processor(text=texts[start:stop], max_length=max_length, return_tensors="np")
            return self.text_embeddings(np.asarray(encoded["input_ids"]), np.asarray(encoded["attention_mask"]))

        return self._in_batches(len(texts), batch_size, embed, progress, description)

    def _in_batches(self, count: int, batch_size: int, embed, progress: bool, description: str) -> np.ndarray:
        from tqdm.auto import tqdm

        chunks = [
            embed(start, min(start + batch_size, count))
            for start in tqdm(range(0, count, batch_size), desc=description, disable=not progress, unit="batch")
        ]
        return np.concatenate(chunks) if chunks else np.empty((0, self.config.hidden_size), np.float32)


def _normalised(features: np.ndarray) -> np.ndarray:
    features = features.astype(np.float32, copy=False)
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norms, 1e-12)  # torch.nn.functional.normalize's eps


def load_onnx_model_and_processor(folder: str | os.PathLike, *, threads: int | None = None):
    """The encoder of an export folder and the processor saved beside it (`ivt_hf.hub.folder.
    load_model_and_processor` for `--runtime onnx`)."""
    from transformers import AutoProcessor

    encoder = IVTOnnxEncoder(folder, threads=threads)
    try:
        processor = AutoProcessor.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as error:
        raise OnnxFolderError(f"{folder}: its processor cannot be loaded ({str(error).splitlines()[0]})") from None
    return encoder, processor


RUNTIMES = ("torch", "onnx")


def load_for_runtime(name_or_path: str | os.PathLike, runtime: str = "torch", *, threads: int | None = None):
    """(model, processor) for `runtime`: an IVT model folder or Hub id for `torch` (`ivt_hf.hub.folder.
    load_model_and_processor`), an export folder for `onnx`; a folder of the other kind is one `OnnxFolderError`
    saying which runtime it needs. What `--runtime` means in every command and on the page."""
    if runtime not in RUNTIMES:
        raise IVTInputError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "onnx":
        return load_onnx_model_and_processor(name_or_path, threads=threads)
    if is_onnx_folder(name_or_path):
        raise OnnxFolderError(f"{name_or_path} is an ONNX export (ivt export onnx): pass --runtime onnx to use it")
    from ..hub.folder import load_model_and_processor

    return load_model_and_processor(name_or_path)


__all__ = [
    "EXPORT_DTYPES",
    "RUNTIMES",
    "load_for_runtime",
    "IMAGE_FILE",
    "IVTOnnxEncoder",
    "MissingExtraError",
    "ONNX_MANIFEST",
    "OnnxFolderError",
    "TEXT_FILE",
    "check_onnx_file",
    "is_onnx_folder",
    "load_onnx_model_and_processor",
    "read_manifest",
    "write_manifest",
]
