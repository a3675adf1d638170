"""Starting IVT from public backbones (ViT-B/16, BERT): the mapping against the authors' initialisation routine, and
the backbones read from files, folders and Hub repos laid out exactly as the public ones (on the package's local
Hub-protocol server, no network)."""

from __future__ import annotations

import io

import pytest
import torch
from helpers.hub_access import TOKEN
from helpers.hub_access import load_local_hub as _load_local_hub
from safetensors.torch import load as safetensors_load
from safetensors.torch import load_file

from ivt_hf import IVTConfig, IVTModel
from ivt_hf.conversion import BackboneLayoutError, load_backbones, reference_to_hf_key


def _tiny_backbone_config():
    return IVTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        vocab_size=500,
        max_position_embeddings=128,
        patch_stride=12,
    )


def _timm_to_transformers_vit(timm_state):
    """Write the timm-layout fixture in transformers ViTModel names (q, k, v split), to test the second layout."""
    hidden = timm_state["cls_token"].shape[-1]
    state = {
        "vit.embeddings.cls_token": timm_state["cls_token"],
        "vit.embeddings.position_embeddings": timm_state["pos_embed"],
        "vit.embeddings.patch_embeddings.projection.weight": timm_state["patch_embed.proj.weight"],
        "vit.embeddings.patch_embeddings.projection.bias": timm_state["patch_embed.proj.bias"],
        "vit.layernorm.weight": timm_state["norm.weight"],
        "vit.layernorm.bias": timm_state["norm.bias"],
        "classifier.weight": timm_state["head.weight"],
    }
    names = {
        "norm1": "layernorm_before",
        "attn.proj": "attention.output.dense",
        "norm2": "layernorm_after",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
    }
    for index in range(2):
        for kind in ("weight", "bias"):
            for timm_name, hf_name in names.items():
                state[f"vit.encoder.layer.{index}.{hf_name}.{kind}"] = timm_state[f"blocks.{index}.{timm_name}.{kind}"]
            query, key, value = timm_state[f"blocks.{index}.attn.qkv.{kind}"].split(hidden)
            for part, tensor in zip(("query", "key", "value"), (query, key, value)):
                state[f"vit.encoder.layer.{index}.attention.attention.{part}.{kind}"] = tensor
    return state


@pytest.mark.parametrize("layout", ["timm", "transformers"])
def test_backbone_initialisation_reproduces_reference(fixtures_dir, layout):
    vit = load_file(fixtures_dir / "init" / "vit_timm_layout.safetensors")
    bert = load_file(fixtures_dir / "init" / "bert_hf_layout.safetensors")
    expected = load_file(fixtures_dir / "init" / "expected_encoder_after_init.safetensors")
    if layout == "transformers":
        vit = _timm_to_transformers_vit(vit)
        bert = {f"bert.{key}": value for key, value in bert.items()}  # also accept the BertForX prefix
    torch.manual_seed(0)
    model = IVTModel(_tiny_backbone_config())
    load_backbones(model, vit, bert)
    state = model.state_dict()
    for reference_name, tensor in expected.items():
        assert torch.equal(state[reference_to_hf_key(reference_name)], tensor), reference_name
    # the modality ("type") embedding keeps its own initialisation
    torch.manual_seed(0)
    fresh = IVTModel(_tiny_backbone_config())
    assert torch.equal(
        state["image_embeddings.modality_embedding"], fresh.state_dict()["image_embeddings.modality_embedding"]
    )


def test_backbone_shape_mismatch_is_an_error(fixtures_dir):
    vit = load_file(fixtures_dir / "init" / "vit_timm_layout.safetensors")
    config = IVTConfig(**(_tiny_backbone_config().to_dict() | {"hidden_size": 64, "num_attention_heads": 2}))
    with pytest.raises(BackboneLayoutError, match="needs 16x16 patches and width 64"):
        load_backbones(IVTModel(config), vit)
    with pytest.raises(BackboneLayoutError, match="neither timm layout"):
        load_backbones(IVTModel(_tiny_backbone_config()), {"weight": torch.zeros(1)})


# ---- backbones from the Hub, folders and files --------------------------------------------------------------------

local_hub = None  # the helper module, loaded by the `hub` fixture


def _safetensors_bytes(state: dict) -> bytes:
    from safetensors.torch import save

    return save({name: tensor.contiguous() for name, tensor in state.items()})


def _torch_bytes(state: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _bert_base_uncased_names(bert_state: dict, generator: torch.Generator) -> dict:
    """A BertModel state dict named as google-bert/bert-base-uncased's own `model.safetensors` / `pytorch_model.bin`
    name it: `BertForPreTraining` (`bert.` prefix, `cls.` heads), the LayerNorms as `gamma` / `beta` (the names of
    the TensorFlow port it came from), no `position_ids` buffer."""
    state = {}
    for key, value in bert_state.items():
        if key == "embeddings.position_ids":
            continue
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        state[f"bert.{key}"] = value
    state |= {
        "bert.pooler.dense.weight": torch.randn(32, 32, generator=generator),
        "bert.pooler.dense.bias": torch.zeros(32),
        "cls.predictions.bias": torch.zeros(500),
        "cls.predictions.transform.dense.weight": torch.randn(32, 32, generator=generator),
        "cls.predictions.transform.dense.bias": torch.zeros(32),
        "cls.predictions.transform.LayerNorm.gamma": torch.ones(32),
        "cls.predictions.transform.LayerNorm.beta": torch.zeros(32),
        "cls.predictions.decoder.weight": bert_state["embeddings.word_embeddings.weight"].clone(),
        "cls.seq_relationship.weight": torch.zeros(2, 32),
        "cls.seq_relationship.bias": torch.zeros(2),
    }
    return state


def _sharded_safetensors(state: dict) -> dict[str, bytes]:
    """`state` as transformers writes a sharded checkpoint: two `model-0000i-of-00002.safetensors` shards and the
    `model.safetensors.index.json` that maps every tensor to its shard."""
    import json

    names = sorted(state)
    shards = {f"model-0000{index + 1}-of-00002.safetensors": names[index::2] for index in range(2)}
    weight_map = {name: shard for shard, shard_names in shards.items() for name in shard_names}
    total_size = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
    index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
    files = {"model.safetensors.index.json": json.dumps(index, indent=2).encode()}
    files |= {
        shard: _safetensors_bytes({name: state[name] for name in shard_names}) for shard, shard_names in shards.items()
    }
    return files


def _public_layouts(fixtures_dir) -> dict[str, dict[str, bytes]]:
    """Tiny random repos with the exact file names, config keys and tensor names of the public ones."""
    import json

    from transformers import BertConfig, ResNetConfig, RobertaConfig, ViTConfig

    timm_state = load_file(fixtures_dir / "init" / "vit_timm_layout.safetensors")
    bert_state = load_file(fixtures_dir / "init" / "bert_hf_layout.safetensors")
    generator = torch.Generator().manual_seed(0)
    vit_config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=224,
        patch_size=16,
        architectures=["ViTModel"],
    ).to_json_string()
    vit_model = {
        key.removeprefix("vit."): value
        for key, value in _timm_to_transformers_vit(timm_state).items()
        if key.startswith("vit.")
    }
    vit_model |= {"pooler.dense.weight": torch.randn(32, 32, generator=generator), "pooler.dense.bias": torch.zeros(32)}
    timm_config = json.dumps(
        {
            "architecture": "vit_base_patch16_224",
            "num_classes": 10,
            "num_features": 32,
            "global_pool": "token",
            "pretrained_cfg": {
                "tag": "orig_in21k_ft_in1k",
                "custom_load": False,
                "input_size": [3, 224, 224],
                "fixed_input_size": True,
                "interpolation": "bicubic",
                "crop_pct": 0.9,
                "crop_mode": "center",
                "mean": [0.5, 0.5, 0.5],
                "std": [0.5, 0.5, 0.5],
                "num_classes": 10,
                "pool_size": None,
                "first_conv": "patch_embed.proj",
                "classifier": "head",
            },
        }
    )
    bert_kwargs = dict(
        vocab_size=500,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    pretraining = _bert_base_uncased_names(bert_state, generator)
    patch32 = dict(timm_state) | {
        "patch_embed.proj.weight": torch.randn(32, 3, 32, 32, generator=generator),
        "pos_embed": torch.randn(1, 50, 32, generator=generator),
    }
    roberta = {f"roberta.{key}": value for key, value in bert_state.items()}
    return {
        "google/vit-base-patch16-224-in21k": {
            "config.json": vit_config.encode(),
            "model.safetensors": _safetensors_bytes(vit_model),
        },
        "someone/vit-bin-only": {"config.json": vit_config.encode(), "pytorch_model.bin": _torch_bytes(vit_model)},
        "timm/vit_base_patch16_224.orig_in21k_ft_in1k": {
            "config.json": timm_config.encode(),
            "model.safetensors": _safetensors_bytes(timm_state),
        },
        "google-bert/bert-base-uncased": {
            "config.json": BertConfig(**bert_kwargs, architectures=["BertForMaskedLM"]).to_json_string().encode(),
            "model.safetensors": _safetensors_bytes(pretraining),
            "pytorch_model.bin": _torch_bytes(pretraining),
        },
        "someone/bert-model-only": {
            "config.json": BertConfig(**bert_kwargs, architectures=["BertModel"]).to_json_string().encode(),
            "pytorch_model.bin": _torch_bytes(bert_state),
        },
        "FacebookAI/roberta-base": {
            "config.json": RobertaConfig(**bert_kwargs).to_json_string().encode(),
            "model.safetensors": _safetensors_bytes(roberta),
        },
        "microsoft/resnet-50": {
            "config.json": ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1]).to_json_string().encode(),
            "model.safetensors": _safetensors_bytes({"embedder.embedder.convolution.weight": torch.zeros(8, 3, 7, 7)}),
        },
        "someone/vit-sharded": {"config.json": vit_config.encode(), **_sharded_safetensors(vit_model)},
        "someone/untyped-config": {
            "config.json": json.dumps({"hidden_size": 32, "patch_size": 16}).encode(),
            "model.safetensors": _safetensors_bytes(vit_model),
        },
        "google/vit-base-patch32-224-in21k": {
            "config.json": ViTConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=128,
                image_size=224,
                patch_size=32,
            )
            .to_json_string()
            .encode(),
            "model.safetensors": _safetensors_bytes(patch32),
        },
    }


BUILD = """
import json, sys
import torch
from safetensors.torch import load_file
from ivt_hf.conversion import reference_to_hf_key
from ivt_hf import IVTModel
from ivt_hf.training import ModelArguments, build_model

config_path, expected_path, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
expected = load_file(expected_path)
results = {}
for name, (vit, bert, *revision) in cases.items():
    torch.manual_seed(0)
    arguments = ModelArguments(config_path=config_path, vit_checkpoint=vit, bert_checkpoint=bert,
                               backbone_revision=revision[0] if revision else None)
    try:
        model = build_model(IVTModel, arguments)
    except (ValueError, FileNotFoundError) as error:
        results[name] = f"{type(error).__name__}: {error}"
        continue
    state = model.state_dict()
    wrong = [key for key, tensor in expected.items() if not torch.equal(state[reference_to_hf_key(key)], tensor)]
    results[name] = "exact" if not wrong else f"differs: {wrong[:3]}"
print(json.dumps(results))
"""


@pytest.fixture
def hub(fixtures_dir):
    global local_hub
    local_hub = local_hub or _load_local_hub()
    with local_hub.LocalHub(token=TOKEN) as server:
        for repo_id, files in _public_layouts(fixtures_dir).items():
            server.seed_repo(repo_id, files)
        yield server


def _build(cases: dict, tmp_path, fixtures_dir, env: dict) -> dict:
    import json
    import os
    import subprocess
    import sys

    config_path = tmp_path / "ivt_config.json"
    _tiny_backbone_config().to_json_file(config_path)
    expected = fixtures_dir / "init" / "expected_encoder_after_init.safetensors"
    completed = subprocess.run(
        [sys.executable, "-c", BUILD, str(config_path), str(expected), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert TOKEN not in completed.stdout + completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.compat
def test_backbones_from_hub_repos_folders_and_files(hub, tmp_path, fixtures_dir):
    """Every public layout gives exactly the authors' initialisation; the cache then serves offline."""
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    bert = "google-bert/bert-base-uncased"
    layouts = _public_layouts(fixtures_dir)
    # the BERT repo is named as the real one: LayerNorm gamma / beta, in both of its weight files
    for name in ("model.safetensors", "pytorch_model.bin"):
        data = layouts[bert][name]
        names = set(safetensors_load(data) if name.endswith(".safetensors") else torch.load(io.BytesIO(data)))
        assert "bert.embeddings.LayerNorm.gamma" in names and "bert.encoder.layer.1.output.LayerNorm.beta" in names
        assert not any(key.endswith("LayerNorm.weight") for key in names)
    bert_file = fixtures_dir / "init" / "bert_hf_layout.safetensors"
    folders = {"vit-folder": "google/vit-base-patch16-224-in21k", "sharded-folder": "someone/vit-sharded"}
    for folder, repo_id in folders.items():
        (tmp_path / folder).mkdir()
        for name, data in layouts[repo_id].items():
            (tmp_path / folder / name).write_bytes(data)
    cases = {
        "transformers ViT + BertForMaskedLM": ["google/vit-base-patch16-224-in21k", bert],
        "transformers ViT, .bin only": ["someone/vit-bin-only", "someone/bert-model-only"],
        "timm ViT (the paper's)": ["timm/vit_base_patch16_224.orig_in21k_ft_in1k", bert],
        "sharded ViT repo": ["someone/vit-sharded", bert],
        "local folder + file": [str(tmp_path / "vit-folder"), str(bert_file)],
        "sharded local folder": [str(tmp_path / "sharded-folder"), bert],
        "sharded, by its index file": [str(tmp_path / "sharded-folder" / "model.safetensors.index.json"), bert],
    }
    results = _build(cases, tmp_path, fixtures_dir, env)
    assert results == {name: "exact" for name in cases}
    resolved = {path for origin, method, path, status in hub.requests if "/resolve/" in path}
    assert "/timm/vit_base_patch16_224.orig_in21k_ft_in1k/resolve/main/model.safetensors" in resolved
    assert "/someone/vit-sharded/resolve/main/model-00002-of-00002.safetensors" in resolved
    # safetensors first: the .bin beside it is never fetched
    assert "/google-bert/bert-base-uncased/resolve/main/pytorch_model.bin" not in resolved

    seen = len(hub.requests)
    offline_cases = {
        name: cases[name] for name in ("timm ViT (the paper's)", "transformers ViT, .bin only", "sharded ViT repo")
    }
    offline = _build(offline_cases, tmp_path, fixtures_dir, {**env, "HF_HUB_OFFLINE": "1"})
    assert offline == {name: "exact" for name in offline_cases} and len(hub.requests) == seen
    assert hub.unhandled == []


def test_wrong_backbones_are_clear_errors(hub, tmp_path, fixtures_dir):
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN}
    bert = "google-bert/bert-base-uncased"
    vit = "google/vit-base-patch16-224-in21k"
    cases = {
        "resnet as ViT": ["microsoft/resnet-50", bert],
        "ViT-B/32 as ViT": ["google/vit-base-patch32-224-in21k", bert],
        "roberta as BERT": [vit, "FacebookAI/roberta-base"],
        "ViT as BERT": [vit, vit],
        "timm as BERT": [vit, "timm/vit_base_patch16_224.orig_in21k_ft_in1k"],
        "config without model_type": ["someone/untyped-config", bert],
        "missing repo": ["nobody/no-such-vit", bert],
        "missing revision": [vit, bert, "v9"],
        "missing file": [str(tmp_path / "missing.safetensors"), bert],
    }
    results = _build(cases, tmp_path, fixtures_dir, env)
    expected = {
        "resnet as ViT": "--vit_checkpoint microsoft/resnet-50: microsoft/resnet-50 holds a model with model_type "
        "'resnet'; expected a ViT-B/16",
        "ViT-B/32 as ViT": "the ViT has 32x32 patches and width 32; this IVT model needs 16x16 patches",
        "roberta as BERT": "--bert_checkpoint FacebookAI/roberta-base: FacebookAI/roberta-base holds a model with "
        "model_type 'roberta'; expected a BERT",
        "ViT as BERT": "holds a model with model_type 'vit'; expected a BERT",
        "timm as BERT": "holds a model with timm architecture 'vit_base_patch16_224'; expected a BERT",
        "config without model_type": "--vit_checkpoint someone/untyped-config: someone/untyped-config/config.json "
        "names no model_type (a transformers config) or architecture (a timm config)",
        "missing repo": "InputNotFoundError: --vit_checkpoint nobody/no-such-vit: no Hub repo 'nobody/no-such-vit'",
        "missing revision": "InputNotFoundError: --vit_checkpoint google/vit-base-patch16-224-in21k: Hub repo "
        "'google/vit-base-patch16-224-in21k' has no revision 'v9'",
        "missing file": f"InputNotFoundError: --vit_checkpoint {tmp_path}/missing.safetensors: backbone not found",
    }
    for name, text in expected.items():
        assert text in results[name], (name, results[name])


@pytest.mark.compat
def test_offline_with_an_empty_cache_says_so(tmp_path, fixtures_dir):
    """HF_HUB_OFFLINE=1 and nothing cached: the error names the repo, the cache and HF_HUB_OFFLINE (not "the repo
    has none of the weight files", which would send the user looking for a broken repo)."""
    env = {
        "HF_HOME": str(tmp_path / "empty-hf-home"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }  # nothing listens there: offline must not even try
    repos = {"vit": "google/vit-base-patch16-224-in21k", "bert": "google-bert/bert-base-uncased"}
    results = _build({"vit": [repos["vit"], None], "bert": [None, repos["bert"]]}, tmp_path, fixtures_dir, env)
    for kind, repo_id in repos.items():
        message = results[kind]
        assert message.startswith("InputNotFoundError: "), message
        assert f"{repo_id}: none of model.safetensors" in message and "is in the local Hub cache" in message
        assert str(tmp_path / "empty-hf-home" / "hub") in message
        assert "HF_HUB_OFFLINE is set" in message and "unset HF_HUB_OFFLINE" in message
        assert "has none of" not in message


def _vit_folder(folder, fixtures_dir, config: dict | None) -> None:
    import json

    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    vit = load_file(fixtures_dir / "init" / "vit_timm_layout.safetensors")
    (folder / "model.safetensors").write_bytes(_safetensors_bytes(vit))


def test_corrupt_weights_and_configs_without_a_model_type_are_clear_errors(tmp_path, fixtures_dir):
    from ivt_hf.conversion.backbones import read_backbone
    from ivt_hf.errors import InputNotFoundError, IVTInputError

    good = (fixtures_dir / "init" / "vit_timm_layout.safetensors").read_bytes()
    broken = {"garbage.safetensors": b"\x00\x01 not safetensors at all", "cut.safetensors": good[:-1000]}
    for name, data in broken.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(IVTInputError, match=rf"{tmp_path / name} is not a readable safetensors file"):
            read_backbone(tmp_path / name, "vit")

    # a config.json that names no model type is no evidence that the weights are a ViT (or a BERT)
    for kind in ("vit", "bert"):
        for config in ({"hidden_size": 32, "architectures": ["ViTModel"]}, {}):
            folder = tmp_path / f"untyped-{kind}-{len(config)}"
            _vit_folder(folder, fixtures_dir, config)
            with pytest.raises(IVTInputError, match=rf"{folder / 'config.json'} names no model_type"):
                read_backbone(folder, kind)
    _vit_folder(tmp_path / "no-config", fixtures_dir, None)  # no config.json at all: the weights decide
    assert "cls_token" in read_backbone(tmp_path / "no-config", "vit")

    # a sharded folder whose index is broken or names a missing shard
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    for name, data in _sharded_safetensors(load_file(fixtures_dir / "init" / "vit_timm_layout.safetensors")).items():
        (sharded / name).write_bytes(data)
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(
        InputNotFoundError,
        match=r"model.safetensors.index.json names the shard "
        r"model-00002-of-00002.safetensors, which is not in",
    ):
        read_backbone(sharded, "vit")
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": ')
    with pytest.raises(IVTInputError, match=rf"{sharded / 'model.safetensors.index.json'} is not a shard index"):
        read_backbone(sharded, "vit")
