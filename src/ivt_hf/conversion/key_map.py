"""The one map from the names of the sources IVT is built from to `IVTModel`'s parameter names.

The authors' encoder (`encoder_vl.*`), timm's ViT and transformers' BERT spell the shared parts the same way: the
reference model was itself assembled from a timm ViT and a BERT. So one table serves the converter of the authors'
checkpoints (`original_checkpoint.py`) and the backbone loader (`backbones.py`):

- image embeddings and the final norm: timm names (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `norm.*`);
- text embeddings: BERT names (`embeddings.word_embeddings.weight`, ..., `embeddings.LayerNorm.*`);
- per block: timm names for the shared attention and LayerNorms, and one feed-forward name per source (`mlp_vis` /
  `mlp_txt` in the authors' code, `mlp` in a timm ViT, `intermediate.dense` / `output.dense` in a BERT layer).
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
SHARED_BLOCK = {"norm1": "layer_norm1", "attn.qkv": "self_attn.qkv", "attn.proj": "self_attn.out_proj",
                "norm2": "layer_norm2"}  # fmt: skip
REFERENCE_FFN = {"mlp_vis.fc1": "vision_mlp.fc1", "mlp_vis.fc2": "vision_mlp.fc2", "mlp_txt.fc1": "text_mlp.fc1",
                 "mlp_txt.fc2": "text_mlp.fc2"}  # fmt: skip
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


__all__ = [
    "BERT_FFN",
    "BLOCK_KEY",
    "FINAL_NORM",
    "IMAGE_EMBEDDINGS",
    "REFERENCE_FFN",
    "SHARED_BLOCK",
    "TEXT_EMBEDDINGS",
    "VIT_FFN",
    "block_key",
    "reference_to_hf_key",
]
