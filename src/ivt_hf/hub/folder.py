"""Saving folders that load everywhere: with `ivt_hf` installed (Auto classes) and without it (`trust_remote_code`:
the folder carries `auto_map` and the self-contained modules of `ivt_hf.model`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InputNotFoundError, IVTInputError
from ..model.configuration_ivt import IVTConfig
from ..model.image_processing_ivt import IVTImageProcessor
from ..model.modeling_ivt import IVTForPreTraining, IVTForZeroShotImageClassification, IVTModel
from ..model.processing_ivt import IVTProcessor


def register_for_remote_code(
    model: IVTModel | IVTForPreTraining | None = None, processor: IVTProcessor | None = None
) -> None:
    """Make `save_pretrained` write `auto_map` entries and copy the self-contained modules beside the weights.

    An `IVTForPreTraining` folder maps `AutoModelForPreTraining` to the whole model and `AutoModel` to its encoder
    (`IVTModel`, which loads the `ivt.*` weights of the folder). Every folder maps
    `AutoModelForZeroShotImageClassification`, which `pipeline("zero-shot-image-classification")` loads (and which
    refuses a pre-training folder with a clear error)."""
    IVTConfig.register_for_auto_class()
    IVTModel.register_for_auto_class("AutoModel")
    IVTForPreTraining.register_for_auto_class("AutoModelForPreTraining")
    IVTForZeroShotImageClassification.register_for_auto_class("AutoModelForZeroShotImageClassification")
    IVTImageProcessor.register_for_auto_class("AutoImageProcessor")
    IVTProcessor.register_for_auto_class("AutoProcessor")
    if model is not None:  # save_pretrained adds only the saved class's own entry
        auto_map = dict(getattr(model.config, "auto_map", None) or {})
        model.config.auto_map = auto_map | {
            "AutoModel": "modeling_ivt.IVTModel",
            "AutoModelForZeroShotImageClassification": "modeling_ivt.IVTForZeroShotImageClassification",
        }


def save_model_folder(model: IVTModel | IVTForPreTraining, processor: IVTProcessor, output_dir: str | Path) -> Path:
    """`save_pretrained` of model (the retrieval `IVTModel` or the whole `IVTForPreTraining`) and processor into one
    folder, with `auto_map` for remote-code loading."""
    output_dir = Path(output_dir)
    register_for_remote_code(model, processor)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return output_dir


class NotAnIVTModelError(IVTInputError):
    """The folder exists but does not hold an IVT model + processor saved with `save_pretrained`."""


def check_model_folder(model_dir: str | Path) -> Path:
    """Check, before loading anything, that `model_dir` is a saved IVT model folder; errors say what it is instead."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputNotFoundError(f"model folder not found: {model_dir}")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise NotAnIVTModelError(f"{model_dir} is not a saved model folder: it has no config.json")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
        raise NotAnIVTModelError(f"{config_path} is not a model config: {error}") from None
    _check_model_type(model_dir, model_type)
    check_weights(model_dir)
    return model_dir


SAFETENSORS_WEIGHTS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def check_weights(model_dir: str | Path) -> list[Path]:
    """The safetensors weight files of a saved model folder, each checked readable before any is loaded: a folder
    whose weights are a pickle (`pytorch_model.bin`) is refused naming the file, and never unpickled (unpickling can
    run code); a cut-short or foreign safetensors file is refused naming it. A file the user may not read raises the
    `PermissionError` (the machine's refusal, not bad input)."""
    from safetensors import safe_open

    model_dir = Path(model_dir)
    files = _safetensors_files(model_dir)
    if not files:
        pickled = sorted(path.name for path in model_dir.iterdir() if path.name.endswith(PICKLE_SUFFIXES))
        if pickled:
            raise NotAnIVTModelError(
                f"{model_dir / pickled[0]}: the weights are a pickle, which ivt_hf never loads (unpickling can run "
                "code); save the model as safetensors (save_pretrained) and load that"
            )
        raise NotAnIVTModelError(f"{model_dir} holds no weights: it has no {SAFETENSORS_WEIGHTS}")
    for path in files:
        with open(path, "rb"):  # a file the user may not read: PermissionError, before safetensors says otherwise
            pass
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as error:  # SafetensorError: cut short, not safetensors at all
            raise NotAnIVTModelError(f"{path} is not a readable safetensors file ({error})") from None
    return files


def _safetensors_files(model_dir: Path) -> list[Path]:
    """`model.safetensors`, or the shards `model.safetensors.index.json` names (each inside the folder)."""
    if (model_dir / SAFETENSORS_WEIGHTS).is_file():
        return [model_dir / SAFETENSORS_WEIGHTS]
    index_path = model_dir / SAFETENSORS_INDEX
    if not index_path.is_file():
        return []
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
        names = sorted(set(weight_map.values()))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise NotAnIVTModelError(f"{index_path} is not a safetensors index: {error!r}") from None
    shards = []
    for name in names:
        shard = model_dir / str(name)
        if Path(str(name)).name != str(name) or not shard.is_file():
            raise NotAnIVTModelError(f"{index_path} names a shard that is not a file in the folder: {name!r}")
        shards.append(shard)
    return shards


def _check_model_type(name: str | Path, model_type: str | None) -> None:
    if model_type != IVTConfig.model_type:
        raise NotAnIVTModelError(f"{name} holds a {model_type!r} model, not an IVT model (model_type 'ivt')")


def _hub_failed(error: BaseException) -> bool:
    """Whether loading failed because the Hub answered with an error other than 'no such repo, revision or file'
    (a gated repo, 401/403, 5xx) or could not be reached, as opposed to a name that is not there."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    not_there = (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError)
    unreachable = getattr(sys.modules.get("httpx2"), "TransportError", ())  # huggingface_hub's HTTP client
    seen = set()
    while error is not None and id(error) not in seen:  # transformers wraps it: `raise OSError(...) from error`
        seen.add(id(error))
        refused = isinstance(error, HfHubHTTPError) and not isinstance(error, not_there)
        if refused or isinstance(error, (GatedRepoError, unreachable)):
            return True
        error = error.__cause__ or error.__context__
    return False


def load_model_and_processor(name_or_path: str | Path, *, revision: str | None = None):
    """An IVT model (eval mode) and its processor from a saved folder or a Hub repo id, checked to be IVT first.

    Raises:
        InputNotFoundError: neither a folder nor a repo the Hub (or its cache, offline) knows.
        NotAnIVTModelError: it holds another kind of model.
        OSError: the Hub answered with another error (gated, 401/403, 5xx) or could not be reached.
    """
    from transformers import AutoConfig, AutoModel, AutoProcessor

    local = Path(name_or_path)
    if local.is_dir() or local.exists() or str(name_or_path).startswith((".", "/", "~")):
        check_model_folder(local)
    else:
        try:
            model_type = AutoConfig.from_pretrained(str(name_or_path), revision=revision).model_type
        except (OSError, ValueError) as error:
            if _hub_failed(error):
                raise  # the Hub's failure, not the name's: `ivt` reports it as a remote failure (exit 1)
            raise InputNotFoundError(
                f"model not found: {name_or_path} is neither a local folder nor a Hub repo that can be reached "
                f"({str(error).splitlines()[0]})"
            ) from None
        _check_model_type(name_or_path, model_type)
    try:  # safetensors only: a Hub repo whose weights are a pickle is refused by transformers
        model = AutoModel.from_pretrained(str(name_or_path), revision=revision, use_safetensors=True).eval()
    except OSError as error:
        if error.errno is not None or _hub_failed(error):
            raise  # the machine's or the Hub's failure: `ivt` reports it as such
        raise NotAnIVTModelError(f"{name_or_path}: {str(error).splitlines()[0]}") from None
    try:
        processor = AutoProcessor.from_pretrained(str(name_or_path), revision=revision)
    except (OSError, ValueError, TypeError) as error:  # a tokenizer or processor file that is empty or foreign
        if isinstance(error, OSError) and (error.errno is not None or _hub_failed(error)):
            raise
        raise NotAnIVTModelError(
            f"{name_or_path}: its processor files cannot be read ({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None
    return model, processor


__all__ = [
    "NotAnIVTModelError",
    "check_model_folder",
    "check_weights",
    "load_model_and_processor",
    "register_for_remote_code",
    "save_model_folder",
]
