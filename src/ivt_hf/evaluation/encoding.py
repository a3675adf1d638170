"""Batched, L2-normalised embeddings of images and texts, with a progress bar: what evaluation and search share.

Without torch (the page of a Space exported for onnxruntime) this module still imports: the onnxruntime encoder's
embeddings then come back as the numpy arrays it made (`_from_onnx`), and `model_fingerprint` reads the one the
export recorded."""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from ..errors import IVTInputError

try:
    import torch
except ImportError:  # only an ONNX encoder can encode here (`_is_onnx`); search keeps its embeddings as numpy
    torch = None

DTYPES = ("float32", "bfloat16", "float16", "int8")
# config entries that say where or how a model was saved, not what it computes
_VOLATILE_CONFIG_KEYS = (
    "_name_or_path",
    "transformers_version",
    "architectures",
    "auto_map",
    "dtype",
    "torch_dtype",
    "_attn_implementation",
    "attn_implementation",
)


def model_fingerprint(model) -> str:
    """A short hash of what the model computes: its config (less where it was saved) and every weight's name, shape,
    dtype and bytes. An index records the fingerprint of the model that made it (`GalleryIndex.check_model`). A copy
    made by `prepare_for_inference` keeps the fingerprint of the model it was made from."""
    inherited = getattr(model, "_ivt_fingerprint", None)
    if inherited is not None:
        return inherited
    digest = hashlib.sha256()
    config = {key: value for key, value in model.config.to_dict().items() if key not in _VOLATILE_CONFIG_KEYS}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def prepare_for_inference(model, dtype: str = "float32"):
    """The model to encode with, in eval mode: itself (`float32`), a copy in `bfloat16` or `float16` (on a GPU), or
    a copy whose linear layers are dynamically quantised to int8 (`int8`, CPU: weights int8, activations quantised
    per batch on the fly). Embeddings come out float32 and normalised whatever the dtype. Copies keep the original's
    `model_fingerprint`, so an index built with them is searched with the original model.

    `int8` uses torch's eager dynamic quantisation (`torch.ao.quantization.quantize_dynamic`), which torch marks as
    moving to the torchao package; it is what works with no extra dependency.
    """
    if dtype not in DTYPES:
        raise IVTInputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if _is_onnx(model):
        if dtype != "float32":
            raise IVTInputError(
                f"--dtype {dtype} is for the PyTorch runtime: an ONNX folder's precision is chosen when it is exported "
                f"(ivt export onnx --dtype; this one is {model.dtype})"
            )
        return model
    device = next(model.parameters()).device
    if dtype == "float32":
        return model.eval()
    fingerprint = model_fingerprint(model)
    if dtype == "float16" and device.type != "cuda":
        raise IVTInputError(
            "float16 encoding needs a GPU (a CPU has no fast float16 matmul); on a CPU use bfloat16 or int8"
        )
    if dtype == "int8":
        if device.type != "cpu":
            raise IVTInputError("int8 dynamic quantisation runs on the CPU; on a GPU use float16 or bfloat16")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the torchao migration notice
            warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
            from torch.ao.quantization import quantize_dynamic

            prepared = quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear}, dtype=torch.qint8)
    else:
        prepared = copy.deepcopy(model).to(getattr(torch, dtype)).eval()
    prepared._ivt_fingerprint = fingerprint
    return prepared


def _is_onnx(model) -> bool:
    """Whether `model` is an exported folder's onnxruntime encoder (`ivt_hf.onnx.runtime.IVTOnnxEncoder`, which this
    part may not import: it sits above), which encodes batch by batch itself, into normalised numpy arrays."""
    return getattr(model, "runtime", "torch") == "onnx"


def _from_onnx(embeddings):
    """An ONNX encoder's normalised numpy embeddings as search and evaluation take them: a torch tensor (sharing the
    memory), or the array itself where torch is not installed (`GalleryIndex` then keeps numpy arrays)."""
    return embeddings if torch is None else torch.from_numpy(embeddings)


def _encode_in_batches(model, num_items: int, batch_size: int, embed_batch, progress: bool, description: str):
    """Run `embed_batch(start, stop) -> (batch, hidden)` over [0, num_items) in eval mode (restoring the mode
    afterwards) and return the L2-normalised float32 embeddings `(num_items, hidden)` on the CPU."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.no_grad():
            for start in tqdm(range(0, num_items, batch_size), desc=description, disable=not progress, unit="batch"):
                embeddings = embed_batch(start, min(start + batch_size, num_items))
                chunks.append(torch.nn.functional.normalize(embeddings.float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, model.config.hidden_size)


def encode_images(
    model,
    processor,
    images: Sequence[Any],
    *,
    batch_size: int = 64,
    progress: bool = True,
    description: str = "encoding images",
) -> torch.Tensor:
    """`(len(images), hidden)` L2-normalised float32 image embeddings. `images`: anything the processor accepts, or a
    `datasets.Dataset` with an `image` column (decoded batch by batch)."""
    if _is_onnx(model):
        kwargs = {"batch_size": batch_size, "progress": progress, "description": description}
        return _from_onnx(model.encode_images(images, processor, **kwargs))
    device = next(model.parameters()).device

    def embed_batch(start: int, stop: int) -> torch.Tensor:
        batch = images[start:stop]
        if isinstance(batch, dict):  # a datasets.Dataset slice
            batch = batch["image"]
        pixel_values = processor.image_processor(list(batch), return_tensors="pt")["pixel_values"]
        return model.get_image_features(pixel_values.to(device))

    return _encode_in_batches(model, len(images), batch_size, embed_batch, progress, description)


def encode_texts(
    model,
    processor,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    max_length: int | None = None,
    progress: bool = True,
    description: str = "encoding captions",
) -> torch.Tensor:
    """`(len(texts), hidden)` L2-normalised float32 text embeddings."""
    if _is_onnx(model):
        kwargs = {"batch_size": batch_size, "max_length": max_length, "progress": progress, "description": description}
        return _from_onnx(model.encode_texts(texts, processor, **kwargs))
    device = next(model.parameters()).device
    texts = list(texts)

    def embed_batch(start: int, stop: int) -> torch.Tensor:
        encoded = processor(text=texts[start:stop], max_length=max_length)
        return model.get_text_features(encoded["input_ids"].to(device), encoded["attention_mask"].to(device))

    return _encode_in_batches(model, len(texts), batch_size, embed_batch, progress, description)


__all__ = ["DTYPES", "encode_images", "encode_texts", "model_fingerprint", "prepare_for_inference"]
