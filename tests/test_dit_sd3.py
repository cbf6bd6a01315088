"""Loading SD3 MM-DiT weights from a local diffusers folder into the CVD-STORM DiT."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.transformers.transformer_sd3 import SD3Transformer2DModel

from cvd_sim.models.dit import CVDStormDiT

SMALL_SD3 = {
    "sample_size": 16,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 3,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 24,
    "caption_projection_dim": 32,
    "pooled_projection_dim": 20,
    "out_channels": 16,
    "pos_embed_max_size": 32,
    "dual_attention_layers": (0, 1),
    "qk_norm": "rms_norm",
}


@pytest.fixture(scope="module")
def sd3_folder(tmp_path_factory):
    """A randomly initialised SD3.5-layout transformer saved the diffusers way, inside a pipeline-like root."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("sd3")
    model = SD3Transformer2DModel(**SMALL_SD3).eval()
    model.save_pretrained(root / "transformer")
    return root, model


def test_sd3_folder_loads_and_matches_sd3_per_image(sd3_folder):
    root, sd3 = sd3_folder
    dit = CVDStormDiT.from_sd3(root, layout_adapter_channels=8, layout_blocks=2).eval()
    assert dit.config.num_layers == 3 and tuple(dit.config.dual_attention_layers) == (0, 1)
    dit_state = dit.state_dict()
    for name, weight in sd3.state_dict().items():
        torch.testing.assert_close(dit_state[name], weight, rtol=0, atol=0)

    # With the new blocks disabled and the zero-initialised camera/layout paths, the DiT is SD3 on every image.
    g = torch.Generator().manual_seed(1)
    b, t, v = 1, 2, 3
    latents = torch.randn(b, t, v, 16, 8, 12, generator=g)
    timesteps = torch.rand(b, t, v, generator=g) * 1000
    text = torch.randn(b, 7, 24, generator=g)
    pooled = torch.randn(b, 20, generator=g)
    off = torch.tensor([False])
    with torch.no_grad():
        out = dit(latents, timesteps, text, pooled, temporal_enabled=off, crossview_enabled=off).sample
        expected = sd3(
            latents.reshape(-1, 16, 8, 12),
            encoder_hidden_states=text.expand(t * v, -1, -1),
            pooled_projections=pooled.expand(t * v, -1),
            timestep=timesteps.reshape(-1),
        ).sample
    torch.testing.assert_close(out.reshape(-1, 16, 8, 12), expected, rtol=1e-5, atol=1e-5)


def test_sd3_fields_cannot_be_overridden(sd3_folder):
    root, _ = sd3_folder
    with pytest.raises(ValueError, match="num_layers"):
        CVDStormDiT.from_sd3(root, num_layers=5)


def test_missing_sd3_folder_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"stable-diffusion-3\.5-medium"):
        CVDStormDiT.from_sd3(tmp_path)
