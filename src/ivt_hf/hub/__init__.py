"""Sharing: folders that load with and without ivt_hf, model cards generated from recorded facts, pushing to the Hub.

- `folder.py`: `save_model_folder` (model + processor + `auto_map` and the modules for `trust_remote_code`);
- `card.py`: `render_model_card` / `save_model_card` from facts, never hand-typed numbers;
- `facts.py`: the JSON facts a folder carries (evaluation records, training facts, card facts);
- `push.py`: `push_model_folder`, behind `ivt push`;
- `space.py`: `export_space`, the search page as a Hugging Face Space folder with an ivt_hf wheel, or for
  onnxruntime with ivt_hf's source and no torch (`ivt app --export_space [--runtime onnx]`; imported on use, not
  here: it reads gallery indexes).
"""

import importlib

# Each name loads its module on first use (PEP 562), as the root package does: the page reads a model's facts
# (`facts.py`, `card.py`) in a Space exported for onnxruntime, where torch is not installed (`folder.py` needs it)
_LAZY = {
    "render_model_card": ".card",
    "save_model_card": ".card",
    "write_model_card": ".card",
    "FolderFacts": ".facts",
    "model_card_for_folder": ".facts",
    "read_folder_facts": ".facts",
    "NotAnIVTModelError": ".folder",
    "check_model_folder": ".folder",
    "register_for_remote_code": ".folder",
    "save_model_folder": ".folder",
    "InvalidRepoIdError": ".push",
    "PushResult": ".push",
    "push_model_folder": ".push",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
