"""Text conditions of the DiT: a small byte-level encoder trained with the model (default), or Hugging Face
CLIP / T5 encoders from local folders combined as SD3 does. Both give `encode(prompts) -> (hidden, pooled)`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

PAD, BOS, EOS, BYTE_OFFSET = 0, 1, 2, 3
HF_MANIFEST = "cvd_text_encoders.json"


def byte_tokenize(prompts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """UTF-8 bytes + BOS/EOS, truncated and padded -> ids [B, max_length] int64, mask [B, max_length] bool."""
    ids = torch.full((len(prompts), max_length), PAD, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        tokens = [BOS, *(b + BYTE_OFFSET for b in prompt.encode("utf-8")[: max_length - 2]), EOS]
        ids[row, : len(tokens)] = torch.tensor(tokens)
    return ids, ids != PAD


class ByteTextEncoder(ModelMixin, ConfigMixin):
    """Byte-level transformer encoder (no vocabulary files): hidden [B, L, width], pooled [B, pooled_dim]."""

    @register_to_config
    def __init__(
        self,
        max_length: int = 64,
        width: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        pooled_dim: int = 128,
    ):
        super().__init__()
        self.token_embedding = nn.Embedding(256 + BYTE_OFFSET, width, padding_idx=PAD)
        self.position_embedding = nn.Parameter(torch.randn(max_length, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, num_heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.pooled_proj = nn.Linear(width, pooled_dim)

    @property
    def hidden_size(self) -> int:
        return self.config.width

    @property
    def pooled_size(self) -> int:
        return self.config.pooled_dim

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [B, L] int64, mask [B, L] bool -> hidden [B, L, width], pooled [B, pooled_dim] (masked mean)."""
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        x = self.norm(self.encoder(x, src_key_padding_mask=~mask))
        weights = mask.to(x.dtype).unsqueeze(-1)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return x, self.pooled_proj(pooled)

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts (B strings) -> hidden [B, max_length, width], pooled [B, pooled_dim]."""
        ids, mask = byte_tokenize(list(prompts), self.config.max_length)
        return self(ids.to(self.device), mask.to(self.device))


def _load_hf(folder: Path):
    from transformers import AutoConfig, AutoTokenizer, CLIPTextModelWithProjection, T5EncoderModel

    model_type = AutoConfig.from_pretrained(folder, local_files_only=True).model_type
    classes = {
        "clip_text_model": CLIPTextModelWithProjection,
        "clip": CLIPTextModelWithProjection,
        "t5": T5EncoderModel,
    }
    if model_type not in classes:
        raise ValueError(f"{folder}/config.json: model_type {model_type!r} is not a CLIP text or T5 encoder")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return tokenizer, classes[model_type].from_pretrained(folder, local_files_only=True), model_type != "t5"


class HFTextEncoder(nn.Module):
    """CLIP text and/or T5 encoders from local folders, combined as in SD3: CLIP penultimate hidden states are
    concatenated on channels and zero-padded to the T5 width, then joined with the T5 tokens on the sequence axis;
    pooled = the concatenated CLIP projections (masked mean of T5 when there is no CLIP)."""

    def __init__(self, folders: list[str | Path], max_length: int = 77):
        super().__init__()
        self.folders = [Path(f) for f in folders]
        loaded = [_load_hf(f) for f in self.folders]
        self.tokenizers = [tok for tok, _, _ in loaded]
        self.models = nn.ModuleList(model for _, model, _ in loaded)
        self.is_clip = [clip for _, _, clip in loaded]
        self.max_length = max_length

    @property
    def hidden_size(self) -> int:
        clip = sum(m.config.hidden_size for m, c in zip(self.models, self.is_clip) if c)
        t5 = max((m.config.d_model for m, c in zip(self.models, self.is_clip) if not c), default=0)
        return max(clip, t5)

    @property
    def pooled_size(self) -> int:
        clip = sum(m.config.projection_dim for m, c in zip(self.models, self.is_clip) if c)
        return clip or self.hidden_size

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts (B strings) -> hidden [B, L, hidden_size], pooled [B, pooled_size]."""
        device = next(self.models.parameters()).device
        clip_hidden, clip_pooled, t5_hidden = [], [], []
        for tokenizer, model, is_clip in zip(self.tokenizers, self.models, self.is_clip):
            tokens = tokenizer(
                list(prompts),
                padding="max_length",
                max_length=self.max_length,
                truncation=True,
                return_tensors="pt",
            ).to(device)
            if is_clip:
                out = model(tokens.input_ids, output_hidden_states=True)
                clip_hidden.append(out.hidden_states[-2])
                clip_pooled.append(out.text_embeds)
            else:
                hidden = model(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
                t5_hidden.append((hidden, tokens.attention_mask))
        width = self.hidden_size
        parts = []
        if clip_hidden:
            clip = torch.cat(clip_hidden, dim=-1)
            parts.append(nn.functional.pad(clip, (0, width - clip.shape[-1])))
        parts += [nn.functional.pad(h, (0, width - h.shape[-1])) for h, _ in t5_hidden]
        if clip_pooled:
            pooled = torch.cat(clip_pooled, dim=-1)
        else:
            hidden, mask = t5_hidden[0]
            weights = mask.to(hidden.dtype).unsqueeze(-1)
            pooled = nn.functional.pad(
                (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0), (0, width - hidden.shape[-1])
            )
        return torch.cat(parts, dim=1), pooled

    def save_pretrained(self, folder: str | Path) -> None:
        """folder/encoder_<i>/ (model + tokenizer) and folder/cvd_text_encoders.json listing them."""
        folder = Path(folder)
        names = []
        for i, (tokenizer, model) in enumerate(zip(self.tokenizers, self.models)):
            names.append(f"encoder_{i}")
            model.save_pretrained(folder / names[-1])
            tokenizer.save_pretrained(folder / names[-1])
        (folder / HF_MANIFEST).write_text(
            json.dumps({"encoders": names, "max_length": self.max_length}, indent=2)
        )


def load_text_encoder(folder: str | Path) -> ByteTextEncoder | HFTextEncoder:
    """A text encoder folder written by either class's `save_pretrained`, or one plain HF CLIP/T5 folder."""
    folder = Path(folder)
    manifest = folder / HF_MANIFEST
    if manifest.is_file():
        spec = json.loads(manifest.read_text())
        return HFTextEncoder(
            [folder / name for name in spec["encoders"]], max_length=spec.get("max_length", 77)
        )
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder}: no text encoder here (expected config.json or {HF_MANIFEST})")
    if json.loads(config_file.read_text()).get("_class_name") == ByteTextEncoder.__name__:
        return ByteTextEncoder.from_pretrained(folder)
    return HFTextEncoder([folder])
