"""The one map from the names of the sources IVT is built from to `IVTModel`'s parameter names.

The authors' encoder (`encoder_vl.*`), timm's ViT and transformers' BERT spell the shared parts the same way: the
reference model was itself assembled from a timm ViT and a BERT. So one table serves the converter of the authors'
checkpoints (`original_checkpoint.py`) and the backbone loader (`backbones.py`):

- image embeddings and the final norm: timm names (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `norm.*`);
- text embeddings: BERT names (`embeddings.word_embeddings.weight`, ..., `embeddings.LayerNorm.*`);
- per block: timm names for the shared attention and LayerNorms, and one feed-forward name per source (`mlp_vis` /
  `mlp_txt` in the authors' code, `mlp` in a timm ViT, `intermediate.dense` / `output.dense` in a BERT layer).

`IVTForPreTraining` adds the modules around that encoder (`ivt.*`). Its fusion encoder and MLM head carry BERT's own
names, so the authors' pre-training checkpoints (`encoder_fusion.bert.encoder.layer.{i}.*`, `encoder_fusion.cls.*`,
`itm.*`, `temp`) and bert-base-uncased (`[bert.]encoder.layer.{i}.*`, `cls.predictions.*`) map onto it by prefix.
"""

from __future__ import annotations

import re

IMAGE_EMBEDDINGS = {
    "cls_token": "image_embeddings.class_embedding",
    "pos_embed": "image_embeddings.position_embedding",
    "type_embed": "image_embeddings.modality_embedding",  # the authors' only: ViT has no modality embedding
    "patch_embed.proj.weight": "image_embeddings.patch_embedding.weight",
    "patch_embed.proj.bias": "image_embeddings.patch_embedding.bias",
}
FINAL_NORM = {"norm.weight": "post_layernorm.weight", "norm.bias": "post_layernorm.bias"}
TEXT_EMBEDDINGS = {
    "embeddings.word_embeddings.weight": "text_embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "text_embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight": "text_embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight": "text_embeddings.layer_norm.weight",
    "embeddings.LayerNorm.bias": "text_embeddings.layer_norm.bias",
}
# block parts, timm / reference name -> IVT name (weight and bias each)
SHARED_BLOCK = {
    "norm1": "layer_norm1",
    "attn.qkv": "self_attn.qkv",
    "attn.proj": "self_attn.out_proj",
    "norm2": "layer_norm2",
}
REFERENCE_FFN = {
    "mlp_vis.fc1": "vision_mlp.fc1",
    "mlp_vis.fc2": "vision_mlp.fc2",
    "mlp_txt.fc1": "text_mlp.fc1",
    "mlp_txt.fc2": "text_mlp.fc2",
}
VIT_FFN = {"mlp.fc1": "vision_mlp.fc1", "mlp.fc2": "vision_mlp.fc2"}
BERT_FFN = {"intermediate.dense": "text_mlp.fc1", "output.dense": "text_mlp.fc2"}

BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)\.(weight|bias)$")


def block_key(index: int, part: str, kind: str) -> str:
    """The IVT name of block `index`'s `part` (an IVT part name such as `self_attn.qkv`), `kind` weight or bias."""
    return f"encoder.layers.{index}.{part}.{kind}"


def reference_to_hf_key(name: str) -> str | None:
    """Map an authors' encoder key (without `encoder_vl.`) to the `IVTModel` key, or None if it has no counterpart."""
    for table in (IMAGE_EMBEDDINGS, TEXT_EMBEDDINGS, FINAL_NORM):
        if name in table:
            return table[name]
    match = BLOCK_KEY.match(name)
    if match:
        index, part, kind = match.groups()
        ivt_part = SHARED_BLOCK.get(part) or REFERENCE_FFN.get(part)
        if ivt_part is not None:
            return block_key(int(index), ivt_part, kind)
    return None


# ---- IVTForPreTraining: the fusion encoder and the heads ---------------------------------------------------------

# the sub-modules of one fusion layer, BERT names (weight and bias each); bert-base-uncased has all but crossattention
BERT_LAYER_PARTS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "output.dense",
    "output.LayerNorm",
)
CROSS_ATTENTION_PARTS = (
    "crossattention.self.query",
    "crossattention.self.key",
    "crossattention.self.value",
    "crossattention.output.dense",
    "crossattention.output.LayerNorm",
)
FUSION_LAYER_PARTS = BERT_LAYER_PARTS + CROSS_ATTENTION_PARTS
# BERT's masked-LM head (`BertForMaskedLM` / `BertForPreTraining` / the authors' `encoder_fusion.`) -> IVT names; the
# decoder weight is listed apart because it is tied to a word-embedding table in all of them
BERT_MLM_HEAD = {
    "cls.predictions.transform.dense.weight": "mlm_head.transform.dense.weight",
    "cls.predictions.transform.dense.bias": "mlm_head.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "mlm_head.transform.LayerNorm.weight",
    "cls.predictions.transform.LayerNorm.bias": "mlm_head.transform.LayerNorm.bias",
    "cls.predictions.bias": "mlm_head.decoder.bias",
}
MLM_DECODER_WEIGHT = "mlm_head.decoder.weight"
# the authors' pre-training model: prefixes and the keys that are not a fusion layer
PRETRAINING_ENCODER_PREFIX = "ivt."  # the authors' `encoder_vl.` -> IVTForPreTraining's `ivt.`
REFERENCE_FUSION_PREFIX = "encoder_fusion."
REFERENCE_FUSION_LAYER_KEY = re.compile(r"encoder_fusion\.bert\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
REFERENCE_FUSION_EMBEDDINGS = "encoder_fusion.bert.embeddings."  # unused in fusion mode, except as the decoder's table
REFERENCE_FUSION_WORD_EMBEDDINGS = "encoder_fusion.bert.embeddings.word_embeddings.weight"
REFERENCE_MLM_DECODER_WEIGHT = "encoder_fusion.cls.predictions.decoder.weight"
REFERENCE_MLM_DECODER_BIAS = "encoder_fusion.cls.predictions.decoder.bias"  # tied to `...predictions.bias`
REFERENCE_PRETRAINING_HEADS = {REFERENCE_FUSION_PREFIX + name: ivt for name, ivt in BERT_MLM_HEAD.items()} | {
    REFERENCE_MLM_DECODER_WEIGHT: MLM_DECODER_WEIGHT,
    "itm.weight": "itm_head.weight",
    "itm.bias": "itm_head.bias",
    "temp": "log_temperature",  # the converter takes the logarithm: `conversion.original_checkpoint`
}


def fusion_layer_key(index: int, part: str, kind: str) -> str:
    """The `IVTForPreTraining` name of fusion layer `index`'s `part` (a BERT part name), `kind` weight or bias."""
    return f"fusion.layer.{index}.{part}.{kind}"


def reference_pretraining_to_hf_key(key: str) -> str | None:
    """Map a key of the authors' pre-training model (without `module.`) to the `IVTForPreTraining` key, or None if it
    has no counterpart. The fusion BERT's embeddings and the tied `decoder.bias` duplicate are handled by the
    converter, not here."""
    if key.startswith("encoder_vl."):
        name = reference_to_hf_key(key[len("encoder_vl.") :])
        return PRETRAINING_ENCODER_PREFIX + name if name is not None else None
    if key in REFERENCE_PRETRAINING_HEADS:
        return REFERENCE_PRETRAINING_HEADS[key]
    match = REFERENCE_FUSION_LAYER_KEY.match(key)
    if match and match.group(2) in FUSION_LAYER_PARTS:
        return fusion_layer_key(int(match.group(1)), match.group(2), match.group(3))
    return None


def hf_to_reference_pretraining_key(name: str) -> str | None:
    """The authors' key an `IVTForPreTraining` head or fusion tensor comes from (None for the encoder's `ivt.*`)."""
    for key, ivt_name in REFERENCE_PRETRAINING_HEADS.items():
        if ivt_name == name:
            return key
    if name.startswith("fusion.layer."):
        return "encoder_fusion.bert.encoder.layer." + name[len("fusion.layer.") :]
    return None


__all__ = [
    "BERT_FFN",
    "BERT_LAYER_PARTS",
    "BERT_MLM_HEAD",
    "CROSS_ATTENTION_PARTS",
    "FUSION_LAYER_PARTS",
    "MLM_DECODER_WEIGHT",
    "REFERENCE_PRETRAINING_HEADS",
    "BLOCK_KEY",
    "FINAL_NORM",
    "IMAGE_EMBEDDINGS",
    "REFERENCE_FFN",
    "SHARED_BLOCK",
    "TEXT_EMBEDDINGS",
    "VIT_FFN",
    "block_key",
    "fusion_layer_key",
    "hf_to_reference_pretraining_key",
    "reference_pretraining_to_hf_key",
    "reference_to_hf_key",
]
