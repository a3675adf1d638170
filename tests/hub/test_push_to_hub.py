"""`scripts/push_to_hub.py` against a Hub-protocol server on 127.0.0.1 (`tests/helpers/local_hub.py`).

The push runs the real client code (`create_repo`, `model.push_to_hub`, `processor.push_to_hub`, `upload_folder`:
preupload, LFS basic transfer for the weights, NDJSON commits) in a subprocess with `HF_ENDPOINT` pointing at the
server, because huggingface_hub reads its endpoint when it is imported. Two more subprocesses reload the repo through
the same endpoint, one with ivt_hf and one with `trust_remote_code=True` where importing ivt_hf is blocked, and must
reproduce the local model's embeddings bit for bit. The card's `model-index` must hold the numbers of the evaluation
JSON, which `retrieval_metrics` computed here. All three subprocesses run with huggingface_hub at debug verbosity and
`HF_DEBUG=1` (requests logged as curl commands) and must never print the token; the storage host (the "CDN") must
never receive it. Any request that leaves loopback fails at a dead proxy.

Not covered: authentication and permissions (the server compares one bearer token; anyone owns any namespace), Xet
storage (`HF_HUB_DISABLE_XET=1`; the Hub now stores new uploads with Xet), multipart LFS, pull requests, the real
Hub's rate limits, retries and server-side checks beyond YAML parsing, and how the card renders on the website.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from ivt_hf import IVTModel, IVTProcessor
from ivt_hf.evaluation.metrics import retrieval_metrics
from ivt_hf.hub import model_card_for_folder, read_folder_facts, save_model_card, save_model_folder

TOKEN = "hf_testtoken123"  # fake; only the local server knows it
REPO_ID = "ivt-tests/ivt-tiny-pushed"
ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "push_to_hub.py"
DEMO_PROVENANCE = "Random initialisation, never trained: a fixture of the push test, not a model of anything."


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


local_hub = _load_module("local_hub", Path(__file__).parents[1] / "helpers" / "local_hub.py")


@pytest.fixture
def hub():
    with local_hub.LocalHub(token=TOKEN) as server:
        yield server


def _client_env(server, hf_home: Path, token: str | None) -> dict[str, str]:
    """A clean environment: the local endpoint, no Xet, an isolated cache, maximal client logging, loopback only."""
    dead_proxy = "http://127.0.0.1:9"  # discard port: nothing listens, so any non-loopback request fails at once
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HF_ENDPOINT": server.url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_VERBOSITY": "debug",
        "HF_DEBUG": "1",
        "TRANSFORMERS_VERBOSITY": "info",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "HTTP_PROXY": dead_proxy,
        "HTTPS_PROXY": dead_proxy,
        "ALL_PROXY": dead_proxy,
        "NO_PROXY": "127.0.0.1",
    }
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def _evaluation_record() -> dict:
    """An evaluation in the shape `ivt demo` writes, every number computed by `retrieval_metrics`."""
    generator = torch.Generator().manual_seed(0)
    gallery_pids = torch.arange(20).repeat_interleave(2)  # 40 images of 20 people
    query_pids = torch.arange(20).repeat_interleave(3)  # 60 captions
    positives = (query_pids[:, None] == gallery_pids[None, :]).float()  # (60, 40)
    better_than_chance = torch.randn(60, 40, generator=generator) + 1.5 * positives
    chance = torch.randn(60, 40, generator=generator)
    return {
        "benchmark": "synthpedes",
        "split": "test",
        "protocol": "standard",
        "metrics": retrieval_metrics(better_than_chance, query_pids, gallery_pids),
        "facts": {"protocol": "standard", "num_queries": 60, "num_gallery": 40, "num_identities": 20},
        "baselines": {
            "random": retrieval_metrics(chance, query_pids, gallery_pids),
            "oracle": retrieval_metrics(positives, query_pids, gallery_pids),
        },
    }


def _model_folder(tmp_path: Path, config) -> tuple[Path, dict]:
    """A saved tiny model with the files `ivt demo` leaves beside it: a card (with a local repo id), the facts."""
    torch.manual_seed(0)
    model = IVTModel(config).eval()
    processor = IVTProcessor.from_config(config)
    folder = save_model_folder(model, processor, tmp_path / "model")
    evaluation = _evaluation_record()
    training = {"dataset": "synthpedes", "steps": 0, "seed": 0}
    (folder / "evaluation.json").write_text(json.dumps(evaluation, indent=1))
    (folder / "training_facts.json").write_text(json.dumps(training, indent=1))
    (folder / "eval_results.json").write_text(json.dumps({"eval_loss": 1.0}))  # a Trainer's file: not a record
    save_model_card(
        folder,
        config,
        repo_id=str(folder),
        title="IVT tiny push fixture",
        evaluation=evaluation,
        training=training,
        provenance=DEMO_PROVENANCE,
    )

    images = [
        torch.randint(0, 256, (3, 90, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
        for i in range(2)
    ]
    texts = ["a man in a blue shirt", "a woman with a red bag and black shoes"]
    inputs = processor(images=images, text=texts)
    with torch.no_grad():
        output = model(**inputs)
    expected = {
        "images": images,
        "texts": texts,
        "inputs": dict(inputs),
        "image_embeds": output.image_embeds,
        "text_embeds": output.text_embeds,
    }
    torch.save(expected, tmp_path / "expected.pt")
    return folder, evaluation


RELOAD = """
import sys

if {remote_code}:
    class BlockIvtHf:
        def find_spec(self, name, path=None, target=None):
            if name == "ivt_hf" or name.startswith("ivt_hf."):
                raise ImportError("this process must not import ivt_hf")

    sys.meta_path.insert(0, BlockIvtHf())
else:
    import ivt_hf  # noqa: F401  (registers IVT with the Auto classes)
import torch
from transformers import AutoModel, AutoProcessor

kwargs = {{"trust_remote_code": True}} if {remote_code} else {{}}
model = AutoModel.from_pretrained({repo_id!r}, **kwargs).eval()
processor = AutoProcessor.from_pretrained({repo_id!r}, **kwargs)
expected = torch.load({expected!r}, weights_only=True)
inputs = processor(images=expected["images"], text=expected["texts"])
for key, value in expected["inputs"].items():
    assert torch.equal(inputs[key], value), key
with torch.no_grad():
    output = model(**inputs)
assert torch.equal(output.image_embeds, expected["image_embeds"]), "image embeddings differ"
assert torch.equal(output.text_embeds, expected["text_embeds"]), "text embeddings differ"
if {remote_code}:
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert not any(name.startswith("ivt_hf") for name in sys.modules)
print("reload OK", type(model).__name__, type(processor).__name__)
"""


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n"), card[:200]
    return yaml.safe_load(card.split("---\n")[1])


@pytest.mark.compat
def test_push_then_reload_through_the_same_endpoint_is_bit_exact(tmp_path, tiny_config, hub):
    folder, evaluation = _model_folder(tmp_path, tiny_config)
    push = subprocess.run(
        [
            sys.executable,
            *f"{SCRIPT} --model_dir {folder} --repo_id".split(),
            REPO_ID,
            *"--private --commit_message".split(),
            "Test push",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=_client_env(hub, tmp_path / "hf_push", TOKEN),
    )
    assert push.returncode == 0, push.stderr[-4000:]
    assert TOKEN not in push.stdout + push.stderr
    # the client logged every request (authenticated, as curl commands): the check above is not vacuous
    assert "(authenticated: True)" in push.stderr and "curl -X POST" in push.stderr
    assert "not shared: eval_results.json" in push.stdout

    # what the server holds
    files = hub.files(REPO_ID)
    assert hub.repos[REPO_ID].private
    assert files["model.safetensors"].lfs and not files["config.json"].lfs
    expected_files = {
        "config.json",
        "model.safetensors",
        "modeling_ivt.py",
        "configuration_ivt.py",
        "processor_config.json",
        "README.md",
        "evaluation.json",
        "training_facts.json",
    }
    assert expected_files <= set(files), sorted(files)
    assert "eval_results.json" not in files
    assert json.loads(hub.file_bytes(REPO_ID, "config.json"))["auto_map"]["AutoModel"] == "modeling_ivt.IVTModel"
    assert json.loads(hub.file_bytes(REPO_ID, "evaluation.json")) == evaluation
    summaries = [commit.summary for commit in hub.history(REPO_ID)]
    assert summaries[:3] == [
        "Test push: model card and the run facts it was generated from",
        "Test push: processor",
        "Test push: weights and config",
    ]
    assert not any(TOKEN.encode() in hub.file_bytes(REPO_ID, path) for path in files)
    assert hub.unhandled == [] and hub.storage_requests_with_auth == []

    # the card: numbers from the JSON (the card rounds to 2 decimals), the repo id, the carried-over provenance
    card = hub.file_bytes(REPO_ID, "README.md").decode()
    assert card == (folder / "README.md").read_text()  # the folder's card was refreshed to what was pushed
    (index,) = _front_matter(card)["model-index"]
    metrics = {metric["type"]: metric["value"] for result in index["results"] for metric in result["metrics"]}
    assert metrics == {key.lower(): round(value, 2) for key, value in evaluation["metrics"].items()}
    assert {result["dataset"]["split"] for result in index["results"]} == {"test"}
    assert f'AutoModel.from_pretrained("{REPO_ID}")' in card and str(folder) not in card
    assert DEMO_PROVENANCE in card and "# IVT tiny push fixture" in card
    assert f"| this model | {evaluation['metrics']['R1']:.2f} |" in card

    # reload through the same endpoint in fresh caches: with ivt_hf, and with remote code only
    reloads = {}
    for remote_code in (False, True):
        script = RELOAD.format(remote_code=remote_code, repo_id=REPO_ID, expected=str(tmp_path / "expected.pt"))
        env = _client_env(hub, tmp_path / f"hf_reload_{remote_code}", TOKEN)  # private repo: the token is needed
        reloads[remote_code] = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script)],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    try:
        outputs = {remote_code: process.communicate(timeout=240) for remote_code, process in reloads.items()}
    finally:
        for process in reloads.values():
            process.kill()  # a no-op for a process that has exited
    for remote_code, (stdout, stderr) in outputs.items():
        assert reloads[remote_code].returncode == 0, f"remote_code={remote_code}\n{stderr[-4000:]}"
        assert "reload OK IVTModel IVTProcessor" in stdout
        assert TOKEN not in stdout + stderr
    assert hub.unhandled == [] and hub.storage_requests_with_auth == []
    # the remote-code process fetched the modelling code from the Hub (at the commit `main` resolved to)
    assert ("hub", "GET") in {
        (origin, method)
        for origin, method, path, _ in hub.requests
        if "/resolve/" in path and path.endswith("/modeling_ivt.py")
    }


@pytest.mark.compat
def test_a_refused_push_fails_clearly_without_printing_the_token(tmp_path, tiny_config, hub):
    folder = save_model_folder(IVTModel(tiny_config), IVTProcessor.from_config(tiny_config), tmp_path / "model")
    wrong_token = "hf_wrongtoken456"
    push = subprocess.run(
        [sys.executable, str(SCRIPT), "--model_dir", str(folder), "--repo_id", REPO_ID],
        capture_output=True,
        text=True,
        timeout=240,
        env=_client_env(hub, tmp_path / "hf_push", wrong_token),
    )
    assert push.returncode == 1, push.stderr[-4000:]
    assert "error: the Hub refused the upload" in push.stderr and "401" in push.stderr
    assert wrong_token not in push.stdout + push.stderr
    assert hub.repos == {}


def test_card_says_not_evaluated_without_evaluation_facts(tmp_path, tiny_config):
    torch.manual_seed(0)
    folder = save_model_folder(IVTModel(tiny_config), IVTProcessor.from_config(tiny_config), tmp_path / "model")
    (folder / "eval_results.json").write_text(json.dumps({"eval_loss": 0.5, "epoch": 1.0}))
    facts = read_folder_facts(folder)
    assert facts.evaluations == {} and facts.training is None and facts.files == []
    assert "eval_results.json" in facts.skipped
    card = model_card_for_folder(folder, "someone/ivt-untested", tiny_config)
    assert "Not evaluated in this run." in card
    assert "model-index" not in _front_matter(card)
    assert "was not recorded" in card and "No training facts were recorded" in card


def test_evaluate_cli_record_shape_is_accepted(tmp_path, tiny_config):
    """`ivt evaluate` keeps benchmark/split/protocol inside `facts`; the card must still name them."""
    record = _evaluation_record()
    cli_shape = {"metrics": record["metrics"], "facts": {**record["facts"], "benchmark": "synthpedes", "split": "test"}}
    (tmp_path / "eval_synthpedes_test.json").write_text(json.dumps(cli_shape))
    facts = read_folder_facts(tmp_path)
    assert list(facts.evaluations) == ["eval_synthpedes_test.json"]
    card = model_card_for_folder(tmp_path, "someone/ivt", tiny_config, facts=facts)
    (index,) = _front_matter(card)["model-index"]
    assert {metric["value"] for result in index["results"] for metric in result["metrics"]} == {
        round(value, 2) for value in record["metrics"].values()
    }


@pytest.mark.parametrize(
    ("case", "repo_id", "message"),
    [
        ("missing", REPO_ID, "model folder not found"),
        ("bert", REPO_ID, "not an IVT model"),
        ("empty", REPO_ID, "has no config.json"),
        ("ivt", "a/b/c", "invalid repo id"),
        ("ivt", "bad name!", "invalid repo id"),
    ],
)
def test_script_rejects_bad_input_before_any_request(tmp_path, tiny_config, capsys, case, repo_id, message):
    folder = tmp_path / case
    if case == "bert":
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    elif case == "empty":
        folder.mkdir()
    elif case == "ivt":
        save_model_folder(IVTModel(tiny_config), IVTProcessor.from_config(tiny_config), folder)
    script = _load_module("push_to_hub_script", SCRIPT)
    assert script.main(["--model_dir", str(folder), "--repo_id", repo_id]) == 2
    assert message in capsys.readouterr().err
