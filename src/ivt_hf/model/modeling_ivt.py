"""IVT: one transformer for pedestrian images and their descriptions, and the pre-training model around it.

Re-implemented from the description of Shu et al. 2022, "See Finer, See More: Implicit Modality Alignment for
Text-based Person Retrieval" (arXiv 2208.08608) and its public code's behaviour (no code taken from it). Reads top to
bottom: the retrieval half (output, embeddings (image, text), token dropping (BMM), attention, feed-forward, layer,
encoder, pre-trained base, `IVTModel`, `IVTForZeroShotImageClassification`), then the pre-training half (output,
losses, fusion encoder, MLM head, `IVTForPreTraining`).

`IVTModel`: an image and a text pass run separately through the SAME blocks: attention and LayerNorms are shared,
each block has a vision and a text feed-forward. The embedding of a modality is the final-LayerNorm CLS token;
retrieval ranks images by cosine similarity to the text embedding.

`IVTForPreTraining`, the authors' first stage (after ALBEF): that encoder (`.ivt`, run without BMM), a fusion encoder
of `fusion_num_hidden_layers` BERT layers in which the caption's tokens also attend to the image's (cross-attention),
an image-text matching head and a masked-language-model head. The fusion encoder and the MLM head carry BERT's module
names (`attention.self.query`, `crossattention.output.LayerNorm`, `transform.dense`, ...), so bert-base-uncased and
the authors' checkpoints map onto them one to one. Three losses, equal weights:
- ITC (`image_text_contrastive_loss`): each image against every caption of the batch and back, the logits divided by
  a temperature learnt as its logarithm (`log_temperature`: SGD then moves it by relative amounts) and clamped in
  place into `itc_temperature_range` before each forward (`clamp_temperature_`: a clamp inside the graph would have
  no gradient outside the range). With several processes `itc_gather` concatenates the global batch.
- ITM: the fusion encoder's CLS through `itm_head`, for the B pairs and 2B hard negatives drawn from the local batch
  by similarity (`sample_hard_negatives`).
- MLM: the masked captions through the encoder (text mode) and the fusion encoder; `mlm_head` predicts the masked
  tokens (its decoder tied to the word embeddings unless `tie_word_embeddings=False`).
Fine-tuning keeps `.ivt` and drops the rest. A folder or checkpoint saved before the temperature was learnt as its
logarithm holds `temperature`: it loads as `log_temperature = exact_log(temperature)`, by transformers' checkpoint
conversion mapping in `from_pretrained` and by a pre-hook in `load_state_dict`, and saves in the current layout.

This file imports only torch and transformers (and its sibling config) so that `save_pretrained` can copy it beside
the weights for `trust_remote_code=True` loading.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import ConversionOps, WeightConverter, WeightRenaming
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_ivt import IVTConfig, IVTInputError

IMAGE = "image"
TEXT = "text"


@dataclass
class IVTOutput(ModelOutput):
    """
    Outputs of [`IVTModel.forward`].

    Args:
        logits_per_text (`torch.FloatTensor` of shape `(text_batch, image_batch)`): cosine similarity of every text to
            every image (no temperature: IVT has none). Rank images for a text by a row of this.
        logits_per_image (`torch.FloatTensor` of shape `(image_batch, text_batch)`): its transpose.
        text_embeds (`torch.FloatTensor` of shape `(text_batch, hidden_size)`): final-LayerNorm CLS token of the text
            pass, NOT L2-normalised (the training loss uses the raw vectors).
        image_embeds (`torch.FloatTensor` of shape `(image_batch, hidden_size)`): the same for the image pass.
        text_last_hidden_state (`torch.FloatTensor` of shape `(text_batch, text_seq, hidden_size)`): final-LayerNorm
            states of every text token (after BMM token dropping in training).
        image_last_hidden_state (`torch.FloatTensor` of shape `(image_batch, 1 + num_patches, hidden_size)`).
    """

    logits_per_text: torch.FloatTensor | None = None
    logits_per_image: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None
    text_last_hidden_state: torch.FloatTensor | None = None
    image_last_hidden_state: torch.FloatTensor | None = None


class IVTImageEmbeddings(nn.Module):
    """Patch convolution (possibly overlapping), CLS token, position embedding and the image-only modality embedding."""

    def __init__(self, config: IVTConfig):
        super().__init__()
        self.config = config
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_stride
        )
        num_positions = 1 + config.num_patches
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embedding = nn.Parameter(torch.zeros(1, num_positions, config.hidden_size))
        # Added to every image token (CLS included) and never to text: tells the shared blocks which modality it is.
        self.modality_embedding = nn.Parameter(torch.zeros(1, num_positions, config.hidden_size))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        expected = (self.config.num_channels, *self.config.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise IVTInputError(
                f"pixel_values must have shape (batch, {expected[0]}, {expected[1]}, {expected[2]}) for this model's "
                f"image_size {tuple(self.config.image_size)}, got {tuple(pixel_values.shape)}; run the images through "
                "IVTImageProcessor (or IVTProcessor) first"
            )
        target_dtype = self.patch_embedding.weight.dtype
        patches = self.patch_embedding(pixel_values.to(target_dtype))  # (batch, hidden, grid_y, grid_x)
        patches = patches.flatten(2).transpose(1, 2)  # (batch, grid_y * grid_x, hidden), row-major
        class_tokens = self.class_embedding.expand(patches.shape[0], -1, -1)
        embeddings = torch.cat([class_tokens, patches], dim=1)  # (batch, 1 + num_patches, hidden)
        return embeddings + self.position_embedding + self.modality_embedding


class IVTTextEmbeddings(nn.Module):
    """BERT's embeddings: word + absolute position + token type (always 0), LayerNorm, dropout. No modality term."""

    def __init__(self, config: IVTConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.text_layer_norm_eps)
        self.dropout = nn.Dropout(config.text_embedding_dropout)
        self.register_buffer(
            "position_ids", torch.arange(config.max_position_embeddings).unsqueeze(0), persistent=False
        )

    def forward(self, input_ids: torch.LongTensor) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise IVTInputError(f"input_ids must have shape (batch, sequence), got {tuple(input_ids.shape)}")
        seq_length = input_ids.shape[1]
        max_positions = self.position_embeddings.num_embeddings
        if seq_length > max_positions:
            raise IVTInputError(
                f"input_ids has {seq_length} tokens but the model has {max_positions} text positions; truncate the "
                "text (IVTProcessor does so, with a warning)"
            )
        if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= self.word_embeddings.num_embeddings):
            raise IVTInputError(
                f"input_ids must lie in [0, {self.word_embeddings.num_embeddings}), got values in "
                f"[{int(input_ids.min())}, {int(input_ids.max())}]"
            )
        position_ids = self.position_ids[:, :seq_length]
        token_type_ids = torch.zeros_like(input_ids)
        embeddings = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(position_ids)
        )
        return self.dropout(self.layer_norm(embeddings))  # (batch, seq, hidden)


def drop_tokens(
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None,
    ratio: float,
    mode: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Bidirectional mask modelling (BMM): remove a random number of non-CLS tokens (training only).

    k is drawn uniformly from 0..floor(ratio * N), N the sequence length including CLS (per sample: its real tokens),
    and k positions among 1..N-1 are removed. `"batch"` mode draws one k and one set of positions for the whole batch
    (the reference behaviour, which can remove text padding instead of words); `"per_sample"` draws them per sample
    among real tokens and re-packs each row, padding the shorter ones and returning a matching mask.

    Args:
        hidden_states: `(batch, seq, hidden)` embeddings, positions already added.
        attention_mask: `(batch, seq)` with 1 for real tokens, or None (no padding).
    Returns:
        the shortened `(batch, seq', hidden)` states and the `(batch, seq')` mask (None if none was given and none is
        needed).
    """
    batch_size, seq_length, _ = hidden_states.shape
    device = hidden_states.device
    if mode == "batch":
        num_drop = int(torch.randint(0, math.floor(ratio * seq_length) + 1, ()).item())
        if num_drop == 0:
            return hidden_states, attention_mask
        dropped = torch.randperm(seq_length - 1, device=device)[:num_drop] + 1  # never position 0 (CLS)
        keep = torch.ones(seq_length, dtype=torch.bool, device=device)
        keep[dropped] = False
        kept_positions = keep.nonzero().squeeze(1)
        hidden_states = hidden_states[:, kept_positions]
        attention_mask = attention_mask[:, kept_positions] if attention_mask is not None else None
        return hidden_states, attention_mask

    # per_sample: random scores pick which real, non-CLS tokens go; a stable sort packs the kept tokens to the left
    real = attention_mask.bool() if attention_mask is not None else torch.ones(batch_size, seq_length, dtype=torch.bool)
    real = real.to(device)
    num_real = real.sum(dim=1)  # (batch,)
    max_drop = torch.floor(ratio * num_real.to(torch.float64)).long()
    num_drop = (torch.rand(batch_size, device=device) * (max_drop + 1).to(torch.float32)).long().clamp(max=max_drop)
    candidate = real.clone()
    candidate[:, 0] = False
    scores = torch.rand(batch_size, seq_length, device=device).masked_fill(~candidate, 2.0)
    order = scores.argsort(dim=1)  # candidates first, in random order
    drop_rank = torch.empty_like(order)
    drop_rank.scatter_(1, order, torch.arange(seq_length, device=device).expand(batch_size, -1))
    keep = real & ~(drop_rank < num_drop.unsqueeze(1))
    new_length = int(keep.sum(dim=1).max().item())
    pack_order = (~keep).to(torch.int8).argsort(dim=1, stable=True)[:, :new_length]  # kept tokens, original order
    hidden_states = hidden_states.gather(1, pack_order.unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1]))
    new_mask = keep.gather(1, pack_order).to(attention_mask.dtype if attention_mask is not None else torch.long)
    return hidden_states, new_mask


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention. query/key/value: `(batch, heads, seq, head_dim)`; mask additive `(batch, 1, 1, seq)`."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()  # (batch, seq, heads, head_dim)
    return attn_output, attn_weights


def additive_padding_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(batch, seq) 1/0 mask -> additive (batch, 1, 1, seq) with the dtype's lowest value on padding; None if none."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class IVTAttentionBase(nn.Module):
    """What the encoder's and the fusion encoder's attention share: `num_attention_heads` heads scaled by
    1/sqrt(head_dim), never causal, run by the attention function that `config._attn_implementation` names."""

    def __init__(self, config: IVTConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False

    def attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        dropout: float,
    ) -> torch.Tensor:
        """query `(batch, heads, seq, head_dim)`, key and value `(batch, heads, key_seq, head_dim)`, mask additive
        `(batch, 1, 1, key_seq)` -> `(batch, seq, heads, head_dim)`; `dropout` on the weights in training only."""
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, _ = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=dropout if self.training else 0.0,
            is_causal=False,
        )
        return attn_output


class IVTAttention(IVTAttentionBase):
    """Multi-head self-attention shared by both modalities, with the reference's fused [q; k; v] projection."""

    def __init__(self, config: IVTConfig):
        super().__init__(config)
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        batch_size, seq_length, hidden_size = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch_size, seq_length, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
        attn_output = self.attend(query, key, value, attention_mask, self.config.attention_dropout)
        return self.out_proj(attn_output.reshape(batch_size, seq_length, hidden_size))


class IVTMLP(nn.Module):
    """Feed-forward block: fc1 -> GELU -> fc2. Each layer has one for images and one for text."""

    def __init__(self, config: IVTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class IVTDropPath(nn.Module):
    """Stochastic depth: drop a block's residual branch for whole samples, in training only."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.dim() - 1)
        keep = hidden_states.new_empty(shape).bernoulli_(keep_prob)
        return hidden_states * keep / keep_prob

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class IVTEncoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: shared attention and LayerNorms, modality-specific feed-forward."""

    def __init__(self, config: IVTConfig, drop_path_rate: float):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = IVTAttention(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.vision_mlp = IVTMLP(config)
        self.text_mlp = IVTMLP(config)
        self.drop_path = IVTDropPath(drop_path_rate)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, modality: str) -> torch.Tensor:
        hidden_states = hidden_states + self.drop_path(self.self_attn(self.layer_norm1(hidden_states), attention_mask))
        mlp = self.vision_mlp if modality == IMAGE else self.text_mlp
        return hidden_states + self.drop_path(mlp(self.layer_norm2(hidden_states)))


class IVTEncoder(nn.Module):
    def __init__(self, config: IVTConfig):
        super().__init__()
        num_layers = config.num_hidden_layers
        rates = [
            config.drop_path_rate * index / (num_layers - 1) if num_layers > 1 else 0.0 for index in range(num_layers)
        ]
        self.layers = nn.ModuleList([IVTEncoderLayer(config, rate) for rate in rates])

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, modality: str) -> torch.Tensor:
        additive_mask = additive_padding_mask(attention_mask, hidden_states.dtype)  # padding keys: the dtype's lowest
        for layer in self.layers:
            hidden_states = layer(hidden_states, additive_mask, modality)
        return hidden_states


class IVTPreTrainedModel(PreTrainedModel):
    config: IVTConfig
    config_class = IVTConfig
    base_model_prefix = "ivt"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["IVTEncoderLayer", "IVTImageEmbeddings", "IVTTextEmbeddings"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_attention_backend = True
    # an `IVTForPreTraining` folder loads into `IVTModel` (its `ivt.*` weights); its pre-training heads are expected
    # extras, not a mismatch worth a warning
    _keys_to_ignore_on_load_unexpected = [
        r"^fusion\.",
        r"^itm_head\.",
        r"^mlm_head\.",
        r"^log_temperature$",
        r"^temperature$",  # the same, in a folder saved before the temperature was learnt as its logarithm
    ]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Truncated normal (std `initializer_range`) for linear, conv and embedding weights and the learned tokens,
        like the reference's ViT; LayerNorms at 1/0."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, IVTImageEmbeddings):
            init.trunc_normal_(module.class_embedding, mean=0.0, std=std)
            init.trunc_normal_(module.position_embedding, mean=0.0, std=std)
            init.trunc_normal_(module.modality_embedding, mean=0.0, std=std)
        elif isinstance(module, IVTTextEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).unsqueeze(0))


class IVTModel(IVTPreTrainedModel):
    """The IVT encoder: `get_image_features`, `get_text_features`, and `forward` for both with cosine logits.

    Example:
    ```python
    >>> from transformers import AutoModel, AutoProcessor
    >>> model = AutoModel.from_pretrained("path/to/ivt")
    >>> processor = AutoProcessor.from_pretrained("path/to/ivt")
    >>> inputs = processor(images=images, text=["a woman in a red coat"], return_tensors="pt")
    >>> outputs = model(**inputs)
    >>> best_image_per_text = outputs.logits_per_text.argmax(dim=-1)
    ```
    """

    def __init__(self, config: IVTConfig):
        super().__init__(config)
        self.image_embeddings = IVTImageEmbeddings(config)
        self.text_embeddings = IVTTextEmbeddings(config)
        self.encoder = IVTEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.text_embeddings.word_embeddings = value

    def _encode(
        self, embeddings: torch.Tensor, attention_mask: torch.Tensor | None, modality: str, token_drop: bool = True
    ) -> torch.Tensor:
        """Shared path: BMM token dropping (training only), the blocks, the final LayerNorm. Returns all states."""
        if token_drop and self.training and self.config.token_drop_ratio > 0:
            embeddings, attention_mask = drop_tokens(
                embeddings, attention_mask, self.config.token_drop_ratio, self.config.token_drop_mode
            )
        hidden_states = self.encoder(embeddings, attention_mask, modality)
        return self.post_layernorm(hidden_states)  # (batch, seq, hidden)

    def image_hidden_states(self, pixel_values: torch.Tensor, token_drop: bool = True) -> torch.Tensor:
        """Final-LayerNorm states of the image pass, `(batch, 1 + num_patches, hidden)` (fewer tokens under BMM;
        `token_drop=False` keeps them all, as pre-training does)."""
        return self._encode(self.image_embeddings(pixel_values), None, IMAGE, token_drop)

    def text_hidden_states(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None, token_drop: bool = True
    ) -> torch.Tensor:
        """Final-LayerNorm states of the text pass, `(batch, seq, hidden)` (fewer tokens under BMM)."""
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise IVTInputError(
                f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}"
            )
        return self._encode(self.text_embeddings(input_ids), attention_mask, TEXT, token_drop)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image embeddings `(batch, hidden)`: the final-LayerNorm CLS token, not normalised.

        Unlike transformers 5.x CLIP (which returns an output object) this returns the tensor itself, the vector IVT
        retrieves with.
        """
        return self.image_hidden_states(pixel_values)[:, 0]

    def get_text_features(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Text embeddings `(batch, hidden)`: the final-LayerNorm CLS (`[CLS]`) token, not normalised."""
        return self.text_hidden_states(input_ids, attention_mask)[:, 0]

    def _bucketed_text_embeds(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor, num_buckets: int
    ) -> torch.Tensor:
        """CLS embeddings of the text pass run as `num_buckets` length-sorted groups, each trimmed to its longest."""
        if attention_mask.shape != input_ids.shape:
            raise IVTInputError(
                f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}"
            )
        if (attention_mask[:, 1:] > attention_mask[:, :-1]).any():
            raise IVTInputError(
                "text_length_buckets needs right-padded texts (real tokens first, as IVTProcessor returns them); "
                "attention_mask has a real token after padding"
            )
        lengths = attention_mask.sum(dim=1)
        order = torch.argsort(lengths, stable=True)
        embeds = []
        for group in torch.tensor_split(order, min(num_buckets, len(order))):
            longest = int(lengths[group].max())
            embeds.append(self.get_text_features(input_ids[group, :longest], attention_mask[group, :longest]))
        return torch.cat(embeds)[torch.argsort(order)]

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        text_length_buckets: int | None = None,
        **kwargs,
    ) -> IVTOutput | tuple:
        """Encode images and/or texts (two separate passes of the same blocks; no cross-attention).

        Args:
            pixel_values: `(image_batch, channels, height, width)` normalised images.
            input_ids: `(text_batch, seq)` BERT uncased token ids, `[CLS] ... [SEP] [PAD]...`.
            attention_mask: `(text_batch, seq)`, 1 for real tokens, 0 for padding.
            text_length_buckets: run the text pass as this many groups of similar length, each trimmed to its
                longest text, so that short texts (MLA's word and phrase levels) are not padded to the longest
                sentence. Same embeddings at less cost; `text_last_hidden_state` is then None, and BMM's `"batch"`
                mode draws its positions per group.
            return_dict: (keyword, read by transformers' `can_return_tuple`) False, or `config.return_dict` False,
                returns the output's fields that are not None as a tuple, in `IVTOutput`'s order.
        Returns:
            [`IVTOutput`]; the logits are filled when both modalities are given.
        """
        if pixel_values is None and input_ids is None:
            raise IVTInputError("IVTModel needs pixel_values, input_ids, or both")
        if text_length_buckets is not None and text_length_buckets < 1:
            raise IVTInputError(f"text_length_buckets must be >= 1 (1 = no grouping), got {text_length_buckets}")
        image_states = self.image_hidden_states(pixel_values) if pixel_values is not None else None
        image_embeds = image_states[:, 0] if image_states is not None else None
        text_states = text_embeds = None
        if input_ids is not None and text_length_buckets and text_length_buckets > 1 and attention_mask is not None:
            text_embeds = self._bucketed_text_embeds(input_ids, attention_mask, text_length_buckets)
        elif input_ids is not None:
            text_states = self.text_hidden_states(input_ids, attention_mask)
            text_embeds = text_states[:, 0]

        logits_per_text = logits_per_image = None
        if image_embeds is not None and text_embeds is not None:
            logits_per_text = (
                nn.functional.normalize(text_embeds, dim=-1) @ nn.functional.normalize(image_embeds, dim=-1).t()
            )  # (text_batch, image_batch)
            logits_per_image = logits_per_text.t()

        output = IVTOutput(
            logits_per_text=logits_per_text,
            logits_per_image=logits_per_image,
            text_embeds=text_embeds,
            image_embeds=image_embeds,
            text_last_hidden_state=text_states,
            image_last_hidden_state=image_states,
        )
        return output


def projection_logits(projecting: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CMPM's projections `(len(projecting), len(target))`: each raw row of `projecting` onto every L2-normalised row
    of `target`, i.e. `|projecting_i| * cos(projecting_i, target_j)`. The fine-tuning loss takes its softmax along a
    row, so the projecting vector's length is the inverse temperature IVT learnt (it has no other)."""
    return projecting @ nn.functional.normalize(target, dim=-1).t()


class IVTForZeroShotImageClassification(IVTModel):
    """`IVTModel` for transformers' `zero-shot-image-classification` pipeline, which loads it as
    `AutoModelForZeroShotImageClassification`.

    The same weights, embeddings and state-dict keys as `IVTModel` (a saved `IVTModel` folder loads into it and back);
    only the logits differ. The pipeline reports `softmax(logits_per_image)` over the candidate labels, as it does for
    CLIP, whose logits are cosines times a learnt scale (`logit_scale.exp()`, 100). IVT has no such scale: its
    fine-tuning loss (CMPM) takes the softmax of `projection_logits(image_embeds, text_embeds)`, the cosines times
    the image embedding's own length. Those are `logits_per_image` here, so the pipeline's scores are the distribution
    over texts the model was trained to produce. Plain cosines (`IVTModel`'s logits, within [-1, 1]) rank the labels
    the same way but would give nearly uniform scores. `logits_per_text` is CMPM's other direction
    (`projection_logits(text_embeds, image_embeds)`), not the transpose.

    A pre-training folder (`IVTForPreTraining`) is refused with an `IVTInputError`: its image-text scores are cosines
    over a temperature that only the whole pre-training model holds, so CMPM's scale would give it probabilities it
    was never trained for. Its encoder's image embeddings remain one `image-feature-extraction` pipeline away.
    """

    def __init__(self, config: IVTConfig):
        if "IVTForPreTraining" in (getattr(config, "architectures", None) or ()):
            raise IVTInputError(
                f"{getattr(config, 'name_or_path', '') or 'this config'} holds a pre-training model "
                "(IVTForPreTraining), which zero-shot image classification does not take: its scores need the "
                "pre-training temperature. Fine-tune it first (ivt train --model_name_or_path FOLDER) and classify "
                "with that model, or take its image embeddings with pipeline('image-feature-extraction')"
            )
        super().__init__(config)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> IVTOutput | tuple:
        """`IVTModel.forward`, with CMPM's `projection_logits` as the logits when both modalities are given."""
        output = super().forward(pixel_values, input_ids, attention_mask, return_dict=True, **kwargs)
        if output.image_embeds is not None and output.text_embeds is not None:
            output.logits_per_image = projection_logits(output.image_embeds, output.text_embeds)
            output.logits_per_text = projection_logits(output.text_embeds, output.image_embeds)
        return output


# --------------------------------------------------------------------------------------------------------------------
# Pre-training (the authors' first stage; the module docstring describes the model and its three losses)
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class IVTForPreTrainingOutput(ModelOutput):
    """
    Outputs of [`IVTForPreTraining.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): `loss_itc + loss_itm (+ loss_mlm)`, equal weights.
        loss_itc, loss_itm, loss_mlm (`torch.FloatTensor` of shape `()`): the three terms (`loss_mlm` is None without
            `mlm_input_ids`).
        image_embeds, text_embeds (`torch.FloatTensor` of shape `(batch, hidden_size)`): final-LayerNorm CLS vectors of
            the shared encoder, not normalised.
        itm_logits (`torch.FloatTensor` of shape `(3 * batch, 2)`): matching logits of the B positive pairs followed
            by the B (image, hard negative text) and B (hard negative image, text) pairs; column 1 = "matches".
        mlm_logits (`torch.FloatTensor` of shape `(num_masked, vocab_size)`): predictions at the masked positions,
            in row-major order of `mlm_labels != -100`.
        temperature (`torch.FloatTensor` of shape `()`): the ITC temperature used (`exp(log_temperature)`, after
            clamping).
    """

    loss: torch.FloatTensor | None = None
    loss_itc: torch.FloatTensor | None = None
    loss_itm: torch.FloatTensor | None = None
    loss_mlm: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    itm_logits: torch.FloatTensor | None = None
    mlm_logits: torch.FloatTensor | None = None
    temperature: torch.FloatTensor | None = None


def image_text_contrastive_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, temperature: torch.Tensor | float
) -> torch.Tensor:
    """ITC: each image against every text (and each text against every image) of the batch, divided by the
    temperature; the caption of the pair is the target. Mean of the image->text and text->image cross-entropies.

    Args:
        image_features, text_features: `(batch, dim)`, row i a pair (normalise them first if wanted). With several
            processes pass the gathered batch: every process then computes the same loss of the global batch.
    """
    targets = torch.arange(image_features.shape[0], device=image_features.device)
    logits_image_to_text = image_features @ text_features.t() / temperature
    return (
        nn.functional.cross_entropy(logits_image_to_text, targets)
        + nn.functional.cross_entropy(logits_image_to_text.t(), targets)
    ) / 2


def sample_hard_negatives(
    similarity: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """ALBEF's hard negatives: for each image a text drawn with probability softmax(similarity row) + 1e-4, and for
    each text an image drawn from its column likewise; the pair's own partner (the diagonal) has probability 0.

    Args:
        similarity: `(batch, batch)` image-to-text similarities of the local pairs (no gradient needed).
    Returns:
        `(negative_text_for_image, negative_image_for_text)`, two `(batch,)` index tensors.
    """
    batch_size = similarity.shape[0]
    if similarity.shape != (batch_size, batch_size) or batch_size < 2:
        raise IVTInputError(
            f"hard negatives need a square similarity of at least 2 pairs, got {tuple(similarity.shape)}"
        )
    similarity = similarity.detach().float()
    diagonal = torch.eye(batch_size, dtype=torch.bool, device=similarity.device)
    weights_image_to_text = (similarity.softmax(dim=1) + 1e-4).masked_fill(diagonal, 0.0)
    weights_text_to_image = (similarity.t().softmax(dim=1) + 1e-4).masked_fill(diagonal, 0.0)
    negative_text = torch.multinomial(weights_image_to_text, 1, generator=generator).squeeze(1)
    negative_image = torch.multinomial(weights_text_to_image, 1, generator=generator).squeeze(1)
    return negative_text, negative_image


def _check_pretraining_inputs(
    pixel_values: torch.Tensor,
    input_ids: torch.LongTensor,
    mlm_input_ids: torch.LongTensor | None,
    mlm_labels: torch.LongTensor | None,
) -> None:
    """Pre-training takes pairs (as many captions as images) and both MLM inputs or neither, of the captions' shape."""
    batch_size = pixel_values.shape[0]
    if input_ids.shape[0] != batch_size:
        raise IVTInputError(f"{batch_size} images but {input_ids.shape[0]} captions: pre-training takes pairs")
    if (mlm_input_ids is None) != (mlm_labels is None):
        raise IVTInputError("give both mlm_input_ids and mlm_labels, or neither")
    if mlm_input_ids is not None and (mlm_input_ids.shape != input_ids.shape or mlm_labels.shape != input_ids.shape):
        raise IVTInputError(
            f"mlm_input_ids {tuple(mlm_input_ids.shape)} and mlm_labels {tuple(mlm_labels.shape)} must have the "
            f"shape of input_ids {tuple(input_ids.shape)}"
        )


class IVTFusionSelfAttention(IVTAttentionBase):
    """BERT's attention core: separate query, key and value projections; keys and values from `context` (the image
    tokens) in cross-attention, from the text itself otherwise."""

    def __init__(self, config: IVTConfig):
        super().__init__(config)
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, context: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        batch_size, seq_length, hidden_size = hidden_states.shape

        def heads(states: torch.Tensor) -> torch.Tensor:  # (batch, seq, hidden) -> (batch, heads, seq, head_dim)
            return states.view(batch_size, -1, self.num_heads, self.head_dim).transpose(1, 2)

        query, key, value = heads(self.query(hidden_states)), heads(self.key(context)), heads(self.value(context))
        attn_output = self.attend(query, key, value, attention_mask, self.config.fusion_attention_dropout)
        return attn_output.reshape(batch_size, seq_length, hidden_size)


class IVTFusionSelfOutput(nn.Module):
    """BERT's post-norm residual: LayerNorm(dropout(dense(x)) + input)."""

    def __init__(self, config: IVTConfig, in_features: int | None = None):
        super().__init__()
        self.dense = nn.Linear(in_features or config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.fusion_layer_norm_eps)
        self.dropout = nn.Dropout(config.fusion_hidden_dropout)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class IVTFusionAttention(nn.Module):
    def __init__(self, config: IVTConfig):
        super().__init__()
        self.self = IVTFusionSelfAttention(config)
        self.output = IVTFusionSelfOutput(config)

    def forward(
        self, hidden_states: torch.Tensor, context: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        return self.output(self.self(hidden_states, context, attention_mask), hidden_states)


class IVTFusionIntermediate(nn.Module):
    def __init__(self, config: IVTConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class IVTFusionLayer(GradientCheckpointingLayer):
    """A BERT layer with cross-attention: text self-attention, then attention from the text to the image tokens,
    then the feed-forward block; each followed by BERT's residual + LayerNorm."""

    def __init__(self, config: IVTConfig):
        super().__init__()
        self.attention = IVTFusionAttention(config)
        self.crossattention = IVTFusionAttention(config)
        self.intermediate = IVTFusionIntermediate(config)
        self.output = IVTFusionSelfOutput(config, in_features=config.intermediate_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        image_states: torch.Tensor,
        image_attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        hidden_states = self.attention(hidden_states, hidden_states, attention_mask)
        hidden_states = self.crossattention(hidden_states, image_states, image_attention_mask)
        return self.output(self.intermediate(hidden_states), hidden_states)


class IVTFusionEncoder(nn.Module):
    """`fusion_num_hidden_layers` BERT layers with cross-attention. Its input is the shared encoder's text states (no
    embedding layer of its own); its keys and values in cross-attention are the shared encoder's image states."""

    def __init__(self, config: IVTConfig):
        super().__init__()
        self.layer = nn.ModuleList([IVTFusionLayer(config) for _ in range(config.fusion_num_hidden_layers)])

    def forward(
        self, text_states: torch.Tensor, attention_mask: torch.Tensor | None, image_states: torch.Tensor
    ) -> torch.Tensor:
        additive_mask = additive_padding_mask(attention_mask, text_states.dtype)
        hidden_states = text_states
        for layer in self.layer:
            hidden_states = layer(hidden_states, additive_mask, image_states, None)  # every image token is real
        return hidden_states


class IVTMLMHead(nn.Module):
    """BERT's prediction head: dense -> activation -> LayerNorm -> decoder to the vocabulary (with bias)."""

    def __init__(self, config: IVTConfig):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.fusion_layer_norm_eps)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.transform.LayerNorm(self.activation_fn(self.transform.dense(hidden_states)))
        return self.decoder(hidden_states)


# ----- folders saved before the temperature was learnt as its logarithm -----

OLD_TEMPERATURE_KEY = "temperature"  # what such a folder holds instead of `log_temperature`: the temperature itself


def exact_log(value: torch.Tensor) -> torch.Tensor:
    """A float32 `log` of the float32 scalar `value` whose `exp` gives `value` back bit for bit (on this machine's
    float32 `exp`), where one exists among the float32 numbers next to `log(value)`; else the one whose `exp` comes
    closest. The model learns the ITC temperature as its logarithm: this keeps a converted temperature (the authors'
    `temp`, an old folder's `temperature`) the same number to the bit for most temperatures (0.5 and 0.37 included),
    and within a relative `ulp(log(value))` (below 4e-7 for temperatures above 0.001) for the rest."""
    log = value.log()
    if torch.equal(log.exp(), value):
        return log
    candidates = [log]
    for direction in (float("inf"), float("-inf")):
        neighbour = log
        for _ in range(4):
            neighbour = torch.nextafter(neighbour, torch.tensor(direction))
            candidates.append(neighbour)
    return min(candidates, key=lambda candidate: abs(candidate.exp().item() - value.item()))


def log_of_old_temperature(temperature: torch.Tensor) -> torch.Tensor:
    """The `log_temperature` of an old folder's `temperature` (the float32 scalar it holds)."""
    return exact_log(temperature.detach().to(torch.float32).reshape(()))


class _LogOfOldTemperature(ConversionOps):
    """`temperature` -> `log_temperature` as `from_pretrained` loads an old folder (`log_of_old_temperature`)."""

    def convert(self, input_dict, source_patterns, target_patterns, **kwargs) -> dict[str, torch.Tensor]:
        tensors = next(iter(input_dict.values()))
        return {target_patterns[0]: log_of_old_temperature(tensors[0] if isinstance(tensors, list) else tensors)}


class _OldTemperatureConverter(WeightConverter):
    """A conversion at load only. transformers saves a loaded model in the layout it was loaded from (the reverse of
    every conversion that matched, and for a new model of every registered one): that would write the old
    `temperature` again. Its reverse renames `log_temperature` to itself, so saving writes the current layout."""

    def reverse_transform(self) -> WeightRenaming:
        return WeightRenaming(source_patterns=r"^log_temperature$", target_patterns="log_temperature")


def _load_old_temperature(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """`load_state_dict` pre-hook (a resumed pre-training checkpoint, any state dict): an old `temperature` becomes
    `log_temperature`, so that neither is missing nor unexpected."""
    old = state_dict.pop(prefix + OLD_TEMPERATURE_KEY, None)
    if old is not None and prefix + "log_temperature" not in state_dict:
        state_dict[prefix + "log_temperature"] = log_of_old_temperature(old)


class IVTForPreTraining(IVTPreTrainedModel):
    """IVT with the authors' pre-training heads: ITC + ITM (hard negatives) + MLM, equal weights.

    `self.ivt` is the retrieval encoder ([`IVTModel`]): fine-tuning takes it and drops the rest. Images and texts run
    through it without BMM token dropping. The fusion encoder reads the text states and attends to the image states;
    its CLS feeds the ITM head, its states at masked positions the MLM head.

    Example:
    ```python
    >>> model = IVTForPreTraining(IVTConfig())
    >>> out = model(pixel_values=images, input_ids=ids, attention_mask=mask, mlm_input_ids=masked, mlm_labels=labels)
    >>> out.loss.backward()
    ```
    """

    _tied_weights_keys = {"mlm_head.decoder.weight": "ivt.text_embeddings.word_embeddings.weight"}

    def __init__(self, config: IVTConfig):
        super().__init__(config)
        self.ivt = IVTModel(config)
        self.fusion = IVTFusionEncoder(config)
        self.itm_head = nn.Linear(config.hidden_size, 2)
        self.mlm_head = IVTMLMHead(config)
        # The ITC temperature is learnt as its logarithm: the gradient of the log is the temperature times that of
        # the temperature itself, so plain SGD (the authors' optimiser, lr 5e-3) moves it by relative amounts
        # instead of throwing it out of its range within a few steps (benchmarks/README.md, "Pre-training").
        self.log_temperature = nn.Parameter(torch.tensor(math.log(config.itc_temperature)))
        self.register_load_state_dict_pre_hook(_load_old_temperature)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, IVTForPreTraining):
            init.constant_(module.log_temperature, math.log(module.config.itc_temperature))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.ivt.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Linear:
        return self.mlm_head.decoder

    @torch.no_grad()
    def clamp_temperature_(self) -> None:
        """Clamp the learnt temperature into `config.itc_temperature_range` (if set) IN PLACE, as ALBEF does.

        `forward` calls it first. Clamping the parameter itself, outside the graph, keeps its gradient: a clamp inside
        the graph has zero gradient outside the range, so a temperature that once left the range stayed at the bound
        for good."""
        temperature_range = self.config.itc_temperature_range
        if temperature_range is not None:
            self.log_temperature.clamp_(math.log(temperature_range[0]), math.log(temperature_range[1]))

    def current_temperature(self) -> torch.Tensor:
        """The ITC temperature, `exp(log_temperature)` (differentiable)."""
        return self.log_temperature.exp()

    def fuse(self, text_states: torch.Tensor, attention_mask: torch.Tensor | None, image_states: torch.Tensor):
        """Fusion-encoder states `(batch, text_seq, hidden)` of texts attending to their images."""
        return self.fusion(text_states, attention_mask, image_states)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        mlm_input_ids: torch.LongTensor | None = None,
        mlm_labels: torch.LongTensor | None = None,
        itc_gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs,
    ) -> IVTForPreTrainingOutput | tuple:
        """The pre-training losses of a batch of (image, caption) pairs; pair i's partner is row i.

        Args:
            pixel_values: `(batch, channels, height, width)`; input_ids / attention_mask: `(batch, seq)` captions.
            mlm_input_ids: the captions with masked tokens (same shape); mlm_labels: the original id at each masked
                position, -100 elsewhere. Without them there is no MLM term.
            itc_gather: with several processes, a function that concatenates a tensor's rows from all processes
                with gradients (`ivt_hf.training.distributed.all_gather_with_grad`): every process then computes
                the ITC of the global batch (global negatives). ITM negatives are drawn from the local batch.
            return_dict: (keyword, read by transformers' `can_return_tuple`) False, or `config.return_dict` False,
                returns the output's fields that are not None as a tuple, in `IVTForPreTrainingOutput`'s order.
        """
        _check_pretraining_inputs(pixel_values, input_ids, mlm_input_ids, mlm_labels)
        image_states = self.ivt.image_hidden_states(pixel_values, token_drop=False)
        text_states = self.ivt.text_hidden_states(input_ids, attention_mask, token_drop=False)
        image_embeds, text_embeds = image_states[:, 0], text_states[:, 0]

        self.clamp_temperature_()
        temperature = self.current_temperature()
        image_features, text_features = self._itc_features(image_embeds, text_embeds)
        loss_itc = self._itc_loss(image_features, text_features, temperature, itc_gather)
        with torch.no_grad():  # the ITM's hard negatives are drawn from the local ITC similarities
            similarity = image_features @ text_features.t() / temperature
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        loss_itm, itm_logits = self._itm_loss(image_states, text_states, mask, similarity)
        loss_mlm = mlm_logits = None
        if mlm_input_ids is not None:
            loss_mlm, mlm_logits = self._mlm_loss(mlm_input_ids, mlm_labels, attention_mask, image_states)

        loss = loss_itc + loss_itm + (loss_mlm if loss_mlm is not None else 0.0)
        return IVTForPreTrainingOutput(
            loss=loss,
            loss_itc=loss_itc,
            loss_itm=loss_itm,
            loss_mlm=loss_mlm,
            image_embeds=image_embeds,
            text_embeds=text_embeds,
            itm_logits=itm_logits,
            mlm_logits=mlm_logits,
            temperature=temperature.detach(),
        )

    def _itc_features(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The vectors the ITC compares `(batch, hidden)`: the CLS embeddings, L2-normalised if `itc_normalize`."""
        if not self.config.itc_normalize:
            return image_embeds, text_embeds
        return nn.functional.normalize(image_embeds, dim=-1), nn.functional.normalize(text_embeds, dim=-1)

    def _itc_loss(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        temperature: torch.Tensor,
        itc_gather: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> torch.Tensor:
        """ITC of the local batch, or of the global one when `itc_gather` is given (one collective for both
        modalities: the two feature matrices travel side by side)."""
        if itc_gather is None:
            return image_text_contrastive_loss(image_features, text_features, temperature)
        dim = image_features.shape[1]
        both = itc_gather(torch.cat([image_features, text_features], dim=1))  # (global batch, 2 * dim)
        return image_text_contrastive_loss(both[:, :dim], both[:, dim:], temperature)

    def _itm_loss(
        self, image_states: torch.Tensor, text_states: torch.Tensor, mask: torch.Tensor, similarity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ITM loss and logits `(3 * batch, 2)`: the B positives, then (image, hard negative text) and (hard negative
        image, text), the negatives drawn from `similarity` `(batch, batch)` by `sample_hard_negatives`."""
        batch_size = image_states.shape[0]
        negative_text, negative_image = sample_hard_negatives(similarity)
        fused = self.fuse(
            torch.cat([text_states, text_states[negative_text], text_states]),
            torch.cat([mask, mask[negative_text], mask]),
            torch.cat([image_states, image_states, image_states[negative_image]]),
        )
        itm_logits = self.itm_head(fused[:, 0])
        itm_labels = torch.zeros(3 * batch_size, dtype=torch.long, device=itm_logits.device)
        itm_labels[:batch_size] = 1
        return nn.functional.cross_entropy(itm_logits, itm_labels), itm_logits

    def _mlm_loss(
        self,
        mlm_input_ids: torch.LongTensor,
        mlm_labels: torch.LongTensor,
        attention_mask: torch.Tensor | None,
        image_states: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MLM loss and logits `(num_masked, vocab_size)`: the masked captions through the shared encoder (text
        mode), the fusion encoder (attending to the images) and the head, at the positions whose label is not -100."""
        masked_states = self.ivt.text_hidden_states(mlm_input_ids, attention_mask, token_drop=False)
        fused_masked = self.fuse(masked_states, attention_mask, image_states)
        selected = mlm_labels != -100
        mlm_logits = self.mlm_head(fused_masked[selected])
        if not mlm_logits.shape[0]:  # no token masked in this batch: a zero that keeps the head in the graph
            return mlm_logits.sum() * 0.0, mlm_logits
        return nn.functional.cross_entropy(mlm_logits, mlm_labels[selected]), mlm_logits


# `from_pretrained` of a folder saved before `log_temperature` (its `temperature` converted, not reset to the config's
# value as a missing weight). By class name, which transformers also applies to this class loaded with
# `trust_remote_code` (a copy of this file defines it), and overwriting: that copy registers it once more.
register_checkpoint_conversion_mapping(
    "IVTForPreTraining",
    [_OldTemperatureConverter(rf"^{OLD_TEMPERATURE_KEY}$", "log_temperature", operations=[_LogOfOldTemperature()])],
    overwrite=True,
)


__all__ = [
    "IVTForPreTraining",
    "IVTForPreTrainingOutput",
    "IVTForZeroShotImageClassification",
    "IVTModel",
    "IVTOutput",
    "IVTPreTrainedModel",
    "exact_log",
    "image_text_contrastive_loss",
    "projection_logits",
    "sample_hard_negatives",
]
