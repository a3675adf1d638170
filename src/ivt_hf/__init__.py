"""ivt_hf: IVT text-based person retrieval (Shu et al. 2022) as a Hugging Face transformers model.

Importing the package registers `IVTConfig`, `IVTModel`, `IVTForPreTraining`, `IVTForZeroShotImageClassification`,
`IVTImageProcessor` and `IVTProcessor` with the transformers Auto classes, so `AutoModel.from_pretrained(folder)`,
`AutoModelForPreTraining.from_pretrained`, `AutoProcessor.from_pretrained(folder)` and the transformers pipelines
`zero-shot-image-classification` and `image-feature-extraction` (docs/pipelines.md) work.

The package by role (a part imports only the parts listed before it; tests/test_layout.py checks it):
    model/       the four modules that travel with the weights: config (with its presets), model, image and text
                 processors
    errors.py    the package's error types (bad input the user can fix; the CLI's exit code 2)
    atomic.py    state files written whole or not at all (temporary file, fsync, rename)
    outputs.py   output folders: staged and renamed into place with a marker; only ivt_hf's own are replaced
    data/        benchmark specs, the one schema, the one normaliser, loaders; SynthPEDES; image-text pair
                 streams for pre-training (pairs.py) and the WebDataset shards they read (pair_writing.py)
    evaluation/  metrics, encoding, split evaluation, evaluation records, pictures
    footage/     people found in videos and still frames (PyAV, a transformers detector or OpenCV's HOG), tracked over
                 frames and cropped, for the gallery index
    search/      the gallery index of your own images (index.py, building.py) and its FAISS indexes (faiss_cache.py)
    hub/         folder saving, model cards, pushing; the search page as a Hugging Face Space (space.py)
    onnx/        `ivt export onnx` (optimum's exporter, IVT's ONNX configurations) and the onnxruntime encoder of
                 `--runtime onnx`, which imports no torch
    conversion/  the authors' checkpoints and public backbones into IVT; the encoder of a pre-training model, to
                 fine-tune from (pretraining_transfer.py)
    training/    fine-tuning (finetuning/: `ivt train`, trainer, batching, text levels, losses) and pre-training
                 (pretraining/: `ivt pretrain`, whole-word masking) on a shared floor (stage.py, transforms, optim)
    demo.py      `ivt demo`
    app.py       `ivt app`: the search page in the browser (Gradio)
    cli/         the `ivt` command
    __main__.py  `python -m ivt_hf`, the same command
"""

from importlib.metadata import PackageNotFoundError, version

from .model import IVTConfig, IVTImageProcessor, IVTProcessor

try:
    from .model import (
        IVTForPreTraining,
        IVTForZeroShotImageClassification,
        IVTModel,
        IVTOutput,
        IVTPreTrainedModel,
    )
except ImportError:  # no torch: the config and processors only, for the ONNX runtime (`ivt_hf.onnx.runtime`)
    pass

try:
    __version__ = version("ivt_hf")  # written once, in pyproject.toml
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "unknown"

# Names the flat ivt_hf 0.1 exported from the root, now living in their parts. They stay importable from the root
# because scripts written against 0.1 call them there (`from ivt_hf import load_backbones`), and they resolve on first
# use (PEP 562 `__getattr__`) so that importing the root, which every submodule import does, loads the model part only.
# tests/test_layout.py checks both. New code imports them from their parts.
_MOVED = {
    "load_backbones": "ivt_hf.conversion",
    "convert_original_checkpoint": "ivt_hf.conversion",
    "register_for_remote_code": "ivt_hf.hub",
    "save_model_folder": "ivt_hf.hub",
}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'ivt_hf' has no attribute {name!r}")


__all__ = [
    "IVTConfig",
    "IVTForPreTraining",
    "IVTForZeroShotImageClassification",
    "IVTImageProcessor",
    "IVTModel",
    "IVTOutput",
    "IVTPreTrainedModel",
    "IVTProcessor",
    "convert_original_checkpoint",
    "load_backbones",
    "register_for_remote_code",
    "save_model_folder",
]
