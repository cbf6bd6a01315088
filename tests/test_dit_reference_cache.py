"""Reference caching: with causal temporal attention, running the clean reference frames once and only the new
frames per step gives the same velocities and samples as running the whole window; non-causal models refuse."""

from __future__ import annotations

import pytest
import torch
from cvd_sim.envs.worldmodel_sampler import sample_frames
from diffusers import FlowMatchEulerDiscreteScheduler
from test_dit_model import make_inputs, micro_dit
from test_pipeline_world_model import make_conditions

from cvd_sim.models.dit_conditions import DiTConditions
from cvd_sim.models.storm_vae import StormVAE
from cvd_sim.models.text_encoder import ByteTextEncoder
from cvd_sim.pipelines import WorldModel
from cvd_sim.pipelines.window_denoiser import use_reference_cache

K = 2  # reference frames


def split_inputs(inputs: dict, k: int) -> tuple[dict, dict]:
    """Per-image conditions of the first k frames and of the rest (text/pooled shared)."""
    per_image = ("latents", "timesteps", "layout", "intrinsics", "cam_to_ref")
    refs = {key: x[:, :k] if key in per_image else x for key, x in inputs.items()}
    new = {key: x[:, k:] if key in per_image else x for key, x in inputs.items()}
    return refs, new


def world_model(causal: bool) -> WorldModel:
    torch.manual_seed(0)
    text_encoder = ByteTextEncoder(max_length=16, width=32, num_layers=1, num_heads=2, pooled_dim=32)
    vae = StormVAE.from_preset(
        "tiny",
        vae_overrides={"block_out_channels": [16, 16, 16, 16]},
        width=32,
        depth=1,
        num_heads=2,
        key_upsampler_channels=[16, 16, 16],
        sky_hidden=16,
    )
    dit = micro_dit(0, causal_temporal=causal)
    return WorldModel(vae, dit, text_encoder, FlowMatchEulerDiscreteScheduler())


@pytest.fixture(scope="module")
def causal_model() -> WorldModel:
    return world_model(causal=True)


def test_cached_forward_equals_full_window():
    dit = micro_dit(3, causal_temporal=True)
    inputs = make_inputs(2, 4, 3, seed=5)
    inputs["timesteps"][:, :K] = 0.0
    switches = {"temporal_enabled": torch.tensor([True, False]), "camera_mask": torch.tensor([1.0, 0.0])}
    with torch.no_grad():
        full = dit(**inputs, **switches).sample[:, K:]
        refs, new = split_inputs(inputs, K)
        cache = dit.cache_references(**refs, **switches)
        cached = dit(**new, **switches, reference_cache=cache).sample
        again = dit(**new, **switches, reference_cache=cache).sample  # the cache is read, not extended
        # The references matter: other reference latents give other velocities for the new frames.
        refs["latents"] = refs["latents"] + 1.0
        other = dit(**new, **switches, reference_cache=dit.cache_references(**refs, **switches)).sample
    assert cached.shape == (2, 2, 3, 16, 8, 14)
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, cached, rtol=0, atol=0)
    assert (other[0] - cached[0]).abs().max() > 1e-3  # sample 0 has temporal attention on
    torch.testing.assert_close(other[1], cached[1], rtol=1e-5, atol=1e-5)  # sample 1 has it off


def test_cache_rejects_other_batch_shapes():
    dit = micro_dit(3, causal_temporal=True)
    inputs = make_inputs(1, 3, 2, seed=1)
    refs, _ = split_inputs(inputs, K)
    cache = dit.cache_references(**refs)
    wider = make_inputs(1, 1, 3, seed=2)
    with pytest.raises(ValueError, match="reference cache of batch"):
        dit(**wider, reference_cache=cache)


@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_pipeline_cached_sampling_equals_uncached(causal_model, guidance):
    cond = make_conditions(4)
    refs = torch.randn(1, K, 3, 16, 8, 14, generator=torch.Generator().manual_seed(1))
    outs = [
        causal_model.generate(
            cond,
            refs,
            num_steps=3,
            guidance_scale=guidance,
            generator=torch.Generator().manual_seed(2),
            reference_cache=cache,
        )
        for cache in (True, False, None)
    ]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[2], outs[0], rtol=0, atol=0)  # default: cached on a causal model
    assert torch.equal(outs[0][:, :K], refs)


@pytest.mark.parametrize("single_forward", [True, False])
def test_env_sampler_cached_equals_uncached(causal_model, single_forward):
    model = causal_model
    world = make_conditions(K + 1, b=2)
    hidden, pooled = model.encode_prompt(world.prompts())
    cond = DiTConditions(text_hidden=hidden, text_pooled=pooled, **world.window(0, K + 1))
    g = torch.Generator().manual_seed(7)
    refs = torch.randn(2, K, 3, 16, 8, 14, generator=g)
    noise = torch.randn(2, 1, 3, 16, 8, 14, generator=g)
    cached, uncached = (
        sample_frames(model, model.dit, cond, refs, noise, 3, 2.0, single_forward, reference_cache=cache)
        for cache in (True, False)
    )
    assert cached.shape == (2, 1, 3, 16, 8, 14)
    torch.testing.assert_close(cached, uncached, rtol=1e-5, atol=1e-5)


def test_non_causal_model_refuses_or_falls_back():
    model = world_model(causal=False)
    cond = make_conditions(3)
    refs = torch.randn(1, K, 3, 16, 8, 14, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="causal_temporal"):
        model.generate(cond, refs, num_steps=1, reference_cache=True)
    refs_inputs, _ = split_inputs(make_inputs(1, 3, 3), K)
    with pytest.raises(ValueError, match="causal_temporal"):
        model.dit.cache_references(**refs_inputs)
    default, uncached = (
        model.generate(
            cond, refs, num_steps=2, generator=torch.Generator().manual_seed(3), reference_cache=cache
        )
        for cache in (None, False)
    )
    torch.testing.assert_close(default, uncached, rtol=0, atol=0)


def test_cache_defaults_to_causal_models_sampling_in_more_than_one_step(causal_model):
    causal, plain = causal_model.dit.config, world_model(causal=False).dit.config
    assert use_reference_cache(causal, None, 3, 3) and not use_reference_cache(causal, None, 3, 1)
    assert use_reference_cache(causal, True, 3, 1) and not use_reference_cache(causal, False, 3, 3)
    assert not use_reference_cache(causal, None, 0, 3) and not use_reference_cache(plain, None, 3, 3)
