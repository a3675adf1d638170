"""Share an IVT model folder on the Hugging Face Hub; a thin wrapper over `ivt_hf.hub.push_model_folder`.

    hf auth login   # or export HF_TOKEN=...
    python scripts/push_to_hub.py --model_dir outputs/demo/model --repo_id your-name/ivt-synthpedes-demo [--private]

It pushes model + processor with `push_to_hub` (with `auto_map`, so `trust_remote_code=True` loads it without
ivt_hf), regenerates the model card (`README.md`) from the run's facts in the folder (`evaluation.json` /
`eval_*.json`, `training_facts.json`; "not evaluated" when there are none) and uploads the card with those facts.
The token is read by huggingface_hub from `HF_TOKEN` or the login cache: it is not taken on the command line (it would
show in `ps` and the shell history) and never printed. Set `HF_ENDPOINT` to push to another Hub-compatible server.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a folder written by save_model_folder / ivt demo")
    parser.add_argument("--repo_id", required=True, help="'name' or 'namespace/name' on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repo private (ignored if it exists)")
    parser.add_argument("--revision", default="main", help="branch to push to (created from main if missing)")
    parser.add_argument("--commit_message", default=None, help="prefix of the three commit messages")
    parser.add_argument("--provenance", default=None, help="one paragraph for the card saying what the weights are")
    args = parser.parse_args(argv)

    from huggingface_hub.errors import HfHubHTTPError

    from ivt_hf.hub import InvalidRepoIdError, NotAnIVTModelError, push_model_folder

    try:
        result = push_model_folder(
            args.model_dir,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            provenance=args.provenance,
        )
    except (InvalidRepoIdError, FileNotFoundError, NotAnIVTModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except HfHubHTTPError as error:  # the message names the URL and the server's reason, never the token
        print(f"error: the Hub refused the upload: {error}", file=sys.stderr)
        return 1
    print(f"pushed {args.model_dir} to {result.url} (revision {result.revision})")
    for commit_url in result.commits:
        print(f"  commit {commit_url}")
    evaluation = result.card_evaluation or "none: the card says 'not evaluated'"
    print(f"  model card numbers from: {evaluation}; facts uploaded: {', '.join(result.fact_files) or 'none'}")
    for name, reason in result.skipped.items():
        print(f"  not shared: {name} ({reason})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
