"""Sharing a model folder on the Hub: model + processor with `push_to_hub`, then the card and the facts it came from."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import IVTInputError
from ..model.modeling_ivt import IVTModel
from ..model.processing_ivt import IVTProcessor
from .card import write_card_facts, write_model_card
from .facts import model_card_for_folder, read_folder_facts
from .folder import NotAnIVTModelError, check_model_folder, register_for_remote_code

logger = logging.getLogger(__name__)


class InvalidRepoIdError(IVTInputError):
    """The repo id is not `name` or `namespace/name` as the Hub spells them."""


@dataclass
class PushResult:
    repo_id: str  # with its namespace, as the Hub resolved it
    url: str
    revision: str
    commits: list[str]  # commit urls (model, processor, card + facts); fewer when a step changed no file
    fact_files: list[str]
    card_evaluation: str | None  # the evaluation file whose numbers are in the card, None when not evaluated
    skipped: dict[str, str]


def _check_push_arguments(model_dir: Path, repo_id: str) -> None:
    """Fail before any network call, with the reason a user can act on."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise InvalidRepoIdError(f"invalid repo id {repo_id!r}: {error}") from None
    check_model_folder(model_dir)


def push_model_folder(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str = "main",
    commit_message: str | None = None,
    provenance: str | None = None,
) -> PushResult:
    """Share a `save_model_folder` folder on the Hub: model + processor, a model card from the run's facts, the facts.

    The folder is loaded with the Auto classes and pushed with the real `model.push_to_hub` / `processor.push_to_hub`
    (with `auto_map` and the modelling code, so `trust_remote_code=True` works without ivt_hf). The card is then
    refreshed in the folder (`README.md`, for the resolved repo id) and uploaded with the evaluation and training
    JSON it was generated from, last, because `push_to_hub` writes a generic card of its own. Up to three commits
    (a step that changes no file makes none).

    Args:
        token: a Hub token; `None` uses the one huggingface_hub finds (`HF_TOKEN`, `hf auth login`). It is passed to
            the client only and never printed or logged here.
        revision: the branch to push to (created from `main` if missing).
        provenance: one paragraph saying what the weights are; default: the folder's recorded one (see
            `read_folder_facts`).

    Raises:
        InvalidRepoIdError: a malformed repo id. FileNotFoundError: no such folder. NotAnIVTModelError: the folder
            does not hold an IVT model (no config.json, another model_type, or other classes).
        huggingface_hub.errors.HfHubHTTPError: the Hub refused a request.
    """
    from huggingface_hub import HfApi
    from transformers import AutoModel, AutoProcessor

    model_dir = Path(model_dir)
    _check_push_arguments(model_dir, repo_id)
    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    if not isinstance(model, IVTModel) or not isinstance(processor, IVTProcessor):
        raise NotAnIVTModelError(
            f"{model_dir} loads as {type(model).__name__} + {type(processor).__name__}, not IVTModel + IVTProcessor"
        )
    register_for_remote_code(model, processor)
    facts = read_folder_facts(model_dir)
    for name, reason in facts.skipped.items():
        logger.info("not sharing %s: %s", name, reason)  # also in the returned PushResult.skipped

    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    repo_id = repo_url.repo_id  # with the namespace the Hub chose when none was given
    num_parameters = sum(parameter.numel() for parameter in model.parameters())
    card = model_card_for_folder(
        model_dir, repo_id, model.config, num_parameters=num_parameters, provenance=provenance, facts=facts
    )
    write_model_card(model_dir, card)
    if provenance is not None:  # the new statement of what the weights are outlives this push
        write_card_facts(model_dir, title=facts.title, provenance=provenance)
        facts = read_folder_facts(model_dir)

    message = commit_message or "Upload IVT model"
    push_kwargs = {"private": private, "token": token, "revision": revision}
    model_commit = model.push_to_hub(repo_id, commit_message=f"{message}: weights and config", **push_kwargs)
    processor_commit = processor.push_to_hub(repo_id, commit_message=f"{message}: processor", **push_kwargs)
    card_commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=model_dir,
        allow_patterns=["README.md", *facts.files],
        revision=revision,
        commit_message=f"{message}: model card and the run facts it was generated from",
    )
    return PushResult(
        repo_id=repo_id,
        url=str(repo_url),
        revision=revision,
        commits=list(dict.fromkeys(commit.commit_url for commit in (model_commit, processor_commit, card_commit))),
        fact_files=facts.files,
        card_evaluation=next(iter(facts.card_evaluations), None),
        skipped=facts.skipped,
    )


__all__ = ["InvalidRepoIdError", "NotAnIVTModelError", "PushResult", "push_model_folder"]
