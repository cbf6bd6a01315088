"""CVD-STORM DiT: shapes, per-sample block disabling, temporal/cross-view mixing patterns, presets, save/load."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.transformers.transformer_sd3 import SD3Transformer2DModel
from pydantic import ValidationError

from cvd_sim.models.dit import CVDStormDiT
from cvd_sim.models.dit_config import SD35_MEDIUM_MMDIT, dit_config
from cvd_sim.models.dit_sd3_weights import NEW_MODULE_PREFIXES

# A smaller-than-tiny DiT for the behaviour tests (same code paths, faster on a shared 2-core machine).
MICRO = {
    "num_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "caption_projection_dim": 32,
    "joint_attention_dim": 32,
    "pooled_projection_dim": 32,
    "layout_adapter_channels": 16,
    "layout_blocks": 1,
}


def micro_dit(seed: int, **overrides) -> CVDStormDiT:
    torch.manual_seed(seed)
    model = CVDStormDiT.from_preset("tiny", **{**MICRO, **overrides}).eval()
    randomise_zero_inits(model, seed)
    return model


def make_inputs(b: int, t: int, v: int, seed: int = 0, h: int = 8, w: int = 14, text_dim: int = 32):
    g = torch.Generator().manual_seed(seed)
    intrinsics = torch.tensor([[60.0, 0.0, 56.0], [0.0, 60.0, 32.0], [0.0, 0.0, 1.0]]).expand(b, t, v, 3, 3)
    cam_to_ref = torch.eye(4).repeat(b, t, v, 1, 1)
    cam_to_ref[..., 0, 3] = torch.arange(t, dtype=torch.float32).view(1, t, 1)
    return {
        "latents": torch.randn(b, t, v, 16, h, w, generator=g),
        "timesteps": torch.rand(b, t, v, generator=g) * 1000,
        "encoder_hidden_states": torch.randn(b, 12, text_dim, generator=g),
        "pooled_projections": torch.randn(b, text_dim, generator=g),
        "layout": torch.rand(b, t, v, 6, 8 * h, 8 * w, generator=g),
        "intrinsics": intrinsics,
        "cam_to_ref": cam_to_ref,
    }


def randomise_zero_inits(model: torch.nn.Module, seed: int = 0) -> None:
    """Give the zero-initialised condition projections random weights and the new blocks an even blend
    (alpha = 0.5) so every path carries a clear signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in [*model.temporal_blocks.values(), *model.crossview_blocks.values()]:
            block.blend_logit.zero_()
        for conv in model.layout_adapter.outputs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.05)
        model.camera_embedding.proj.weight.copy_(
            torch.randn(model.camera_embedding.proj.weight.shape, generator=g)
        )


@pytest.fixture(scope="module")
def tiny() -> CVDStormDiT:
    """The micro DiT shared by the behaviour tests."""
    return micro_dit(0)


@pytest.fixture(scope="module")
def tiny_preset() -> CVDStormDiT:
    torch.manual_seed(0)
    model = CVDStormDiT.from_preset("tiny").eval()
    randomise_zero_inits(model)
    return model


@pytest.mark.parametrize("t", [1, 4, 8])
@pytest.mark.parametrize("v", [1, 6])
def test_shapes(tiny_preset, t, v):
    """The tiny preset at 64x112 images (8x14 latents)."""
    inputs = make_inputs(1, t, v, text_dim=128)
    with torch.no_grad():
        out = tiny_preset(**inputs).sample
    assert out.shape == (1, t, v, 16, 8, 14)
    assert torch.isfinite(out).all()


def test_per_image_text_and_pooled_match_shared(tiny):
    inputs = make_inputs(1, 2, 3)
    per_image = dict(inputs)
    per_image["encoder_hidden_states"] = inputs["encoder_hidden_states"][:, None, None].expand(
        1, 2, 3, 12, 32
    )
    per_image["pooled_projections"] = inputs["pooled_projections"][:, None, None].expand(1, 2, 3, 32)
    with torch.no_grad():
        torch.testing.assert_close(tiny(**per_image).sample, tiny(**inputs).sample)


def test_temporal_disabled_makes_frames_independent(tiny):
    inputs = make_inputs(1, 4, 3, seed=1)
    changed = dict(inputs)
    changed["latents"] = inputs["latents"].clone()
    changed["latents"][:, 2] += torch.randn_like(changed["latents"][:, 2])
    off = torch.tensor([False])
    with torch.no_grad():
        base_off = tiny(**inputs, temporal_enabled=off).sample
        new_off = tiny(**changed, temporal_enabled=off).sample
        base_on = tiny(**inputs).sample
        new_on = tiny(**changed).sample
    others = [0, 1, 3]
    torch.testing.assert_close(new_off[:, others], base_off[:, others], rtol=0, atol=1e-5)
    # With the temporal block on, the change reaches the other frames.
    assert (new_on[:, others] - base_on[:, others]).abs().max() > 1e-3


def test_disabled_blocks_equal_model_without_them(tiny):
    """A disabled block is exactly the identity: same output as a model built without that block."""
    inputs = make_inputs(1, 3, 4, seed=2)
    config = {k: v for k, v in tiny.config.items() if not k.startswith("_")}
    bare = CVDStormDiT(**{**config, "temporal_block_layers": (), "crossview_block_layers": ()}).eval()
    missing, unexpected = bare.load_state_dict(tiny.state_dict(), strict=False)
    assert not missing and all(k.startswith(("temporal_blocks.", "crossview_blocks.")) for k in unexpected)
    off = torch.tensor([False])
    with torch.no_grad():
        expected = bare(**inputs).sample
        got = tiny(**inputs, temporal_enabled=off, crossview_enabled=off).sample
        enabled = tiny(**inputs).sample
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert (enabled - expected).abs().max() > 1e-3


def test_per_sample_disabling_in_a_batch(tiny):
    inputs = make_inputs(2, 3, 2, seed=3)
    with torch.no_grad():
        mixed = tiny(**inputs, temporal_enabled=torch.tensor([False, True])).sample
        all_off = tiny(**inputs, temporal_enabled=torch.tensor([False, False])).sample
        all_on = tiny(**inputs).sample
    torch.testing.assert_close(mixed[0], all_off[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(mixed[1], all_on[1], rtol=0, atol=1e-5)


def test_crossview_attends_to_ring_neighbours_only():
    """One cross-view block and no temporal block: view 0 sees views 5, 0, 1 of a 6-camera ring, not view 3."""
    model = micro_dit(4, temporal_block_layers=(), crossview_block_layers=(1,))
    inputs = make_inputs(1, 1, 6, seed=4)

    def view0_change(view: int) -> float:
        changed = dict(inputs)
        changed["latents"] = inputs["latents"].clone()
        changed["latents"][:, :, view] += 1.0
        with torch.no_grad():
            return (model(**changed).sample[:, :, 0] - model(**inputs).sample[:, :, 0]).abs().max().item()

    assert view0_change(3) < 1e-5
    assert view0_change(2) < 1e-5
    assert view0_change(1) > 1e-3
    assert view0_change(5) > 1e-3


def test_causal_temporal_sees_only_the_past():
    model = micro_dit(5, causal_temporal=True)
    inputs = make_inputs(1, 4, 2, seed=5)
    changed = dict(inputs)
    changed["latents"] = inputs["latents"].clone()
    changed["latents"][:, 2] += 1.0
    with torch.no_grad():
        base, new = model(**inputs).sample, model(**changed).sample
    torch.testing.assert_close(new[:, :2], base[:, :2], rtol=0, atol=1e-5)
    assert (new[:, 3] - base[:, 3]).abs().max() > 1e-3


def test_camera_mask_drops_camera_condition(tiny):
    inputs = make_inputs(2, 2, 2, seed=6)
    no_camera = {k: v for k, v in inputs.items() if k not in ("intrinsics", "cam_to_ref")}
    with torch.no_grad():
        masked = tiny(**inputs, camera_mask=torch.tensor([0.0, 1.0])).sample
        without = tiny(**no_camera).sample
        with_camera = tiny(**inputs).sample
    torch.testing.assert_close(masked[0], without[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(masked[1], with_camera[1], rtol=0, atol=1e-5)
    assert (with_camera[0] - without[0]).abs().max() > 1e-3


def test_fresh_model_ignores_layout_and_camera_until_trained():
    """Zero-initialised adapter and camera projections add exactly nothing at initialisation."""
    torch.manual_seed(7)
    model = CVDStormDiT.from_preset("tiny", **MICRO).eval()
    inputs = make_inputs(1, 2, 2, seed=7)
    bare = {k: v for k, v in inputs.items() if k not in ("layout", "intrinsics", "cam_to_ref")}
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).sample, model(**bare).sample, rtol=0, atol=0)


def test_save_load_roundtrip(tmp_path, tiny):
    tiny.save_pretrained(tmp_path)
    loaded = CVDStormDiT.from_pretrained(tmp_path).eval()
    assert loaded.temporal_layers == tiny.temporal_layers
    inputs = make_inputs(1, 2, 2, seed=8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).sample, tiny(**inputs).sample, rtol=0, atol=0)


def test_config_errors_name_the_field():
    with pytest.raises(ValidationError, match="temporal_block_layers"):
        dit_config("tiny", temporal_block_layers=(0, 9))
    with pytest.raises(ValidationError, match="caption_projection_dim"):
        dit_config("tiny", caption_projection_dim=64)
    with pytest.raises(ValueError, match="unknown DiT preset"):
        dit_config("huge")


def test_full_preset_builds_on_meta():
    with torch.device("meta"):
        model = CVDStormDiT.from_preset("full")
        reference = SD3Transformer2DModel(**SD35_MEDIUM_MMDIT)
    total = sum(p.numel() for p in model.parameters())
    mmdit = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(NEW_MODULE_PREFIXES))
    print(f"full CVD-STORM DiT: {total / 1e9:.3f} B parameters ({mmdit / 1e9:.3f} B in the MM-DiT part)")
    assert mmdit == sum(p.numel() for p in reference.parameters())
    assert 2.2e9 < mmdit < 2.3e9  # SD3.5-medium MM-DiT, 2.24 B (DESIGN §6)
    assert len(model.temporal_blocks) == len(model.crossview_blocks) == 24
    assert model.transformer_blocks[0].attn.norm_q is not None  # rms qk-norm
    assert model.transformer_blocks[12].attn2 is not None and model.transformer_blocks[13].attn2 is None


def test_gradient_checkpointing_gives_the_same_gradients():
    inputs = make_inputs(1, 2, 3, seed=9)
    grads = []
    for checkpointing in (False, True):
        model = micro_dit(9).train()
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.gradient_checkpointing
        model(**inputs).sample.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads[0].numel() == grads[1].numel() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
