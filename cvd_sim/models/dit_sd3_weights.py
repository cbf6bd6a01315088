"""Load SD3 / SD3.5 MM-DiT weights from a local diffusers folder into the MM-DiT part of a CVD-STORM DiT."""

from __future__ import annotations

from pathlib import Path

from diffusers.models.transformers.transformer_sd3 import SD3Transformer2DModel

# Modules a CVD-STORM DiT adds to the SD3 MM-DiT; they keep their fresh initialisation.
NEW_MODULE_PREFIXES = (
    "temporal_blocks.",
    "crossview_blocks.",
    "frame_embedding.",
    "view_embedding.",
    "camera_embedding.",
    "layout_adapter.",
)


def _transformer_folder(folder: Path) -> Path:
    """The folder holding the transformer config: `folder` itself or its `transformer/` subfolder."""
    for candidate in (folder, folder / "transformer"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"{folder}: no SD3 transformer config.json here or in transformer/. Download the diffusers folder of "
        "stabilityai/stable-diffusion-3.5-medium (or another SD3 model) and pass it, or its transformer/ subfolder."
    )


def load_sd3_mmdit(cls, folder, **overrides):
    """Build `cls` (a CVDStormDiT class) with the SD3 folder's MM-DiT config plus `overrides` for the new parts,
    and copy every SD3 weight into it. Fails if a weight is unused or an MM-DiT weight is missing."""
    sd3 = SD3Transformer2DModel.from_pretrained(_transformer_folder(Path(folder)), local_files_only=True)
    mmdit_config = {k: val for k, val in sd3.config.items() if not k.startswith("_")}
    clash = sorted(set(overrides) & set(mmdit_config))
    if clash:
        raise ValueError(f"{folder}: MM-DiT fields {clash} come from the SD3 config and cannot be overridden")
    model = cls(**mmdit_config, **overrides)
    missing, unexpected = model.load_state_dict(sd3.state_dict(), strict=False)
    not_new = [k for k in missing if not k.startswith(NEW_MODULE_PREFIXES)]
    if unexpected or not_new:
        raise ValueError(
            f"{folder}: SD3 weights do not fit: unexpected {unexpected[:5]}, missing {not_new[:5]}"
        )
    return model
