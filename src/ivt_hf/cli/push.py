"""`ivt push`: share an IVT model folder on the Hugging Face Hub.

    hf auth login   # or export HF_TOKEN=...
    ivt push --model_dir outputs/demo/model --repo_id your-name/ivt-synthpedes-demo [--private]

It pushes model + processor with `push_to_hub` (with `auto_map`, so `trust_remote_code=True` loads it without
ivt_hf), regenerates the model card (`README.md`) from the run's facts in the folder (`evaluation.json` /
`eval_*.json`, `training_facts.json`, `card_facts.json`; "not evaluated" when there are none) and uploads the card
with those facts. The token is read by huggingface_hub from `HF_TOKEN` or the login cache: it is not taken on the
command line (it would show in `ps` and the shell history) and never printed. Set `HF_ENDPOINT` to push to another
Hub-compatible server.
"""

from __future__ import annotations

import argparse

from . import CommandError, flag
from .parsers import documented_command


def run_push(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError

    from ..hub.push import push_model_folder

    try:
        result = push_model_folder(
            args.model_dir,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            provenance=args.provenance,
        )
    except HfHubHTTPError as error:  # the message names the URL and the server's reason, never the token
        raise CommandError(f"the Hub refused the upload: {error}", exit_code=1) from None
    print(f"pushed {args.model_dir} to {result.url} (revision {result.revision})")
    for commit_url in result.commits:
        print(f"  commit {commit_url}")
    evaluation = result.card_evaluation or "none: the card says 'not evaluated'"
    print(f"  model card numbers from: {evaluation}; facts uploaded: {', '.join(result.fact_files) or 'none'}")
    for name, reason in result.skipped.items():
        print(f"  not shared: {name} ({reason})")
    return 0


def register(subparsers) -> None:
    push = documented_command(
        subparsers, "push", help="share a model folder on the Hub with a model card from its facts", doc=__doc__
    )
    push.add_argument(*flag("--model_dir"), required=True, help="a folder written by save_model_folder / ivt demo")
    push.add_argument(*flag("--repo_id"), required=True, help="'name' or 'namespace/name' on the Hub")
    push.add_argument("--private", action="store_true", help="create the repo private (ignored if it exists)")
    push.add_argument("--revision", default="main", help="branch to push to (created from main if missing)")
    push.add_argument(*flag("--commit_message"), default=None, help="prefix of the three commit messages")
    push.add_argument("--provenance", default=None, help="one paragraph for the card saying what the weights are")
    push.set_defaults(handler=run_push)
