"""Sharing: folders that load with and without ivt_hf, model cards generated from recorded facts, pushing to the Hub.

- `folder.py`: `save_model_folder` (model + processor + `auto_map` and the modules for `trust_remote_code`);
- `card.py`: `render_model_card` / `save_model_card` from facts, never hand-typed numbers;
- `facts.py`: the JSON facts a folder carries (evaluation records, training facts, card facts);
- `push.py`: `push_model_folder`, behind `ivt push`;
- `space.py`: `export_space`, the search page as a Hugging Face Space folder with an ivt_hf wheel (`ivt app
  --export_space`; imported on use, not here: it reads gallery indexes).
"""

from .card import render_model_card, save_model_card, write_model_card
from .facts import FolderFacts, model_card_for_folder, read_folder_facts
from .folder import NotAnIVTModelError, check_model_folder, register_for_remote_code, save_model_folder
from .push import InvalidRepoIdError, PushResult, push_model_folder

__all__ = [
    "FolderFacts",
    "InvalidRepoIdError",
    "NotAnIVTModelError",
    "PushResult",
    "check_model_folder",
    "model_card_for_folder",
    "push_model_folder",
    "read_folder_facts",
    "register_for_remote_code",
    "render_model_card",
    "save_model_card",
    "save_model_folder",
    "write_model_card",
]
