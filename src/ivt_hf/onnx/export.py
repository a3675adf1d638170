"""`ivt export onnx`: an IVT model folder (or Hub id) into an ONNX folder, through optimum's `main_export`.

The model goes through optimum's exporter as a custom model with IVT's two ONNX configurations (`config.py`), then:
the fp32 graphs are checked against PyTorch (normalised embeddings within `PARITY_ATOL`, or a RuntimeError: that
would be a bug), `--dtype int8` quantises them with onnxruntime's dynamic quantiser, `--dtype fp16` converts them for
GPUs, and `ivt_onnx.json` records the model's fingerprint and each file's size and SHA-256. The folder is written
whole or not at all (`ivt_hf.outputs.writing_output_dir`).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import IVTInputError
from .runtime import (
    EXPORT_DTYPES,
    IMAGE_FILE,
    ONNX_MANIFEST,
    TEXT_FILE,
    IVTOnnxEncoder,
    MissingExtraError,
    write_manifest,
)

QUANTISED_OPS = ("MatMul", "Gemm")  # the linear layers; a dynamically quantised Conv (the patch embedding) is slower


class NotExportableError(IVTInputError):
    """A model folder that `ivt export onnx` does not export (a pre-training model)."""


@dataclass
class ExportReport:
    output_dir: Path
    dtype: str
    fingerprint: str
    max_abs_diff: float  # of the fp32 graphs against PyTorch, normalised embeddings
    files: dict[str, int]  # name -> bytes

    def summary(self) -> str:
        sizes = ", ".join(f"{name} {size / 2**20:.1f} MB" for name, size in self.files.items())
        return (
            f"exported {self.dtype} ONNX encoders to {self.output_dir} ({sizes}); fp32 graphs match PyTorch within "
            f"{self.max_abs_diff:.1e}"
        )


def require_exporter() -> None:
    """`MissingExtraError` naming the extra when optimum's ONNX exporter or onnxruntime is not installed."""
    missing = [name for name in ("optimum.exporters.onnx", "onnxruntime") if not _importable(name)]
    if missing:
        raise MissingExtraError(
            f"ivt export onnx needs the onnx extra ({', '.join(missing)} not installed): pip install 'ivt_hf[onnx]'"
        )


def _importable(module: str) -> bool:
    """Whether `module` and each package above it can be found (a module imported earlier is found through
    `sys.modules` even when its package is gone)."""
    parts = module.split(".")
    try:
        return all(importlib.util.find_spec(".".join(parts[: end + 1])) is not None for end in range(len(parts)))
    except ModuleNotFoundError:  # a parent package is missing
        return False


def export_onnx(
    model_name_or_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    dtype: str = "fp32",
    overwrite: bool = False,
) -> ExportReport:
    """Export an IVT model folder or Hub id to `output_dir` (module docstring); returns what was written."""
    from ..evaluation.encoding import model_fingerprint
    from ..hub.folder import load_model_and_processor
    from ..outputs import writing_output_dir

    if dtype not in EXPORT_DTYPES:
        raise IVTInputError(f"--dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
    require_exporter()
    name = str(model_name_or_path)
    model, processor = load_model_and_processor(name)  # an IVT folder with safetensors weights, or an error naming it
    if "IVTForPreTraining" in (model.config.architectures or []):
        raise NotExportableError(
            f"{name} holds a pre-training model (IVTForPreTraining), not a retrieval model: fine-tune it first "
            f"(ivt train RECIPE --model_name_or_path {name}) and export that folder"
        )
    fingerprint = model_fingerprint(model)
    del model
    with writing_output_dir(output_dir, overwrite=overwrite, command="ivt export onnx") as staging:
        exported = _main_export(name, staging)
        if exported.fingerprint != fingerprint:  # main_export loads the files again: the same model, or a bug
            raise RuntimeError(f"optimum loaded another model from {name} than ivt_hf did")
        max_diff = check_parity(exported.model, staging)
        if dtype != "fp32":
            _convert(staging, dtype)
        processor.save_pretrained(staging)  # the processor the model was loaded with, whatever optimum copied
        source = str(Path(name).resolve()) if Path(name).is_dir() else name  # a folder, or a Hub repo id
        files = write_manifest(
            staging, fingerprint=fingerprint, dtype=dtype, source=source, config=exported.model.config
        )
    return ExportReport(Path(output_dir), dtype, fingerprint, max_diff, files)


@dataclass
class _Exported:
    folder: Path
    model: object  # the IVTModel optimum loaded and exported (eval mode)
    fingerprint: str


def _main_export(name: str, folder: Path) -> _Exported:
    """optimum's `main_export` of `name` into `folder` with IVT's ONNX configurations."""
    import torch
    from optimum.exporters.onnx import main_export

    from ..evaluation.encoding import model_fingerprint
    from .config import onnx_configs, submodels

    seen = {}

    def get_submodels(model):
        seen["model"] = model
        return submodels(model)

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(name)
    with _ivt_is_a_transformers_model(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the input checks, constants in a trace: expected
        main_export(
            name,
            output=folder,
            task="feature-extraction",
            library_name="transformers",
            framework="pt",
            custom_onnx_configs=onnx_configs(config),
            fn_get_submodels=get_submodels,
            do_validation=False,  # optimum only logs a mismatch; `check_parity` refuses one
        )
    model = seen["model"].eval()
    return _Exported(folder, model, model_fingerprint(model))


@contextmanager
def _ivt_is_a_transformers_model():
    """optimum tells a model's library from the module its class is defined in (`transformers*`, `diffusers*`, ...),
    so a transformers model that a package registers with the Auto classes (IVT, defined in `ivt_hf.model`) is "of no
    known library" and `main_export` stops. For the length of the export, an IVT model counts as what it is, a
    transformers model; every other model is inferred as before."""
    from optimum.exporters.tasks import TasksManager

    original = TasksManager.__dict__["_infer_library_from_model_or_model_class"]

    def infer(cls, model=None, model_class=None):
        config = getattr(model, "config", None) if model is not None else getattr(model_class, "config_class", None)
        if getattr(config, "model_type", None) == "ivt":
            return "transformers"
        return original.__func__(cls, model=model, model_class=model_class)

    TasksManager._infer_library_from_model_or_model_class = classmethod(infer)
    try:
        yield
    finally:
        TasksManager._infer_library_from_model_or_model_class = original


def check_parity(model, folder: Path, atol: float | None = None) -> float:
    """The largest |difference| between the normalised embeddings of `model` (PyTorch) and of the fp32 ONNX graphs in
    `folder`, on random images and on texts of 1 token, 9 tokens and the model's limit, in one padded batch; a
    RuntimeError when it is over `atol` (`PARITY_ATOL`): the export is then wrong, and nothing is written."""
    import numpy as np
    import torch

    from .config import PARITY_ATOL

    atol = PARITY_ATOL if atol is None else atol
    encoder = IVTOnnxEncoder(folder, check_files=False)
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.rand(3, model.config.num_channels, *model.config.image_size, generator=generator) * 2 - 1
    limit = model.config.max_position_embeddings
    input_ids = torch.randint(0, model.config.vocab_size, (3, limit), generator=generator)
    attention_mask = torch.zeros(3, limit, dtype=torch.long)
    for row, length in enumerate((1, min(9, limit), limit)):
        attention_mask[row, :length] = 1
    with torch.no_grad():
        reference = [
            torch.nn.functional.normalize(model.get_image_features(pixel_values), dim=-1).numpy(),
            torch.nn.functional.normalize(model.get_text_features(input_ids, attention_mask), dim=-1).numpy(),
        ]
    found = [
        encoder.image_embeddings(pixel_values.numpy()),
        encoder.text_embeddings(input_ids.numpy(), attention_mask.numpy()),
    ]
    max_diff = max(float(np.abs(ref - got).max()) for ref, got in zip(reference, found))
    if not max_diff <= atol:
        raise RuntimeError(f"the ONNX export in {folder} differs from PyTorch by {max_diff:.3g} (> {atol})")
    return max_diff


def _convert(folder: Path, dtype: str) -> None:
    """The fp32 graphs in `folder`, replaced by int8 ones (onnxruntime's dynamic quantiser: int8 weights, activations
    quantised per batch on the fly) or fp16 ones (inputs and outputs stay float32)."""
    for name in (IMAGE_FILE, TEXT_FILE):
        source, converted = folder / name, folder / f"{name}.{dtype}"
        if dtype == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(source, converted, weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTISED_OPS))
        else:
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16

            onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(converted))
        os.replace(converted, source)


__all__ = ["ExportReport", "NotExportableError", "check_parity", "export_onnx", "require_exporter", "ONNX_MANIFEST"]
