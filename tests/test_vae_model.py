"""STORM-VAE model: shapes, gradients, activations, sky/exposure compositing, save/load, presets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

from cvd_sim.models.clip_cameras import clip_cameras
from cvd_sim.models.gaussian_decoder import GaussianDecoder
from cvd_sim.models.storm_vae import SD35_VAE_CONFIG, TINY_VAE_CONFIG, StormVAE, load_sd35_vae

sys.path.insert(0, str(Path(__file__).parent))
from test_vae_analytic_scene import AnalyticClips

SMALL_DECODER = {
    "width": 32,
    "depth": 1,
    "num_heads": 2,
    "key_upsampler_channels": [16, 8, 8],
    "sky_hidden": 8,
}


@pytest.fixture(scope="module")
def clip():
    return {k: (v[None] if torch.is_tensor(v) else v) for k, v in AnalyticClips(num_clips=1)[0].items()}


def _small_model(seed: int = 0) -> StormVAE:
    torch.manual_seed(seed)
    return StormVAE.from_preset("tiny", **SMALL_DECODER)


def _run(model, clip, targets=(1, 3)):
    ctx = torch.tensor([0, 2, 4, 6])
    k_c, c2r_c, t_c = clip_cameras(clip, ctx, 0)
    k_t, c2r_t, t_t = clip_cameras(clip, torch.tensor(targets), 0)
    gen = torch.Generator().manual_seed(0)
    return model(
        clip["images"][:, ctx],
        k_c,
        c2r_c,
        t_c,
        k_t,
        c2r_t,
        t_t,
        decode_index=torch.tensor([0, 5]),
        generator=gen,
    )


def test_forward_shapes_and_gs_loss_reaches_encoder(clip):
    model = _small_model()
    out = _run(model, clip)
    b, v, h, w = 1, 2, 16, 32
    assert out["rgb"].shape == (b, 2, v, 3, h, w)
    assert out["depth"].shape == out["alpha"].shape == (b, 2, v, 1, h, w)
    assert out["mean"].shape == (b, 4, v, 16, h // 8, w // 8)
    assert out["vae_recon"].shape == (b, 2, 3, h, w)
    n = 4 * v * h * w
    assert out["gaussians"]["means"].shape == (b, n, 3) and out["gaussians"]["velocities"].shape == (b, n, 3)
    # only the Gaussian-splatting branch's loss: its gradient must reach the VAE encoder through the latents
    gs_loss = (out["rgb"] - clip["images"][:, [1, 3]]).square().mean() + out["depth"].mean() * 1e-3
    gs_loss.backward()
    grad = model.vae.encoder.conv_in.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    assert model.vae.decoder.conv_out.weight.grad is None  # the VAE decoder is not on this path


def test_plain_vae_pass_skips_the_gaussian_branch(clip):
    model = _small_model()
    ctx = torch.tensor([0, 2, 4, 6])
    k_c, c2r_c, t_c = clip_cameras(clip, ctx, 0)
    k_t, c2r_t, t_t = clip_cameras(clip, torch.tensor([1]), 0)
    args = (clip["images"][:, ctx], k_c, c2r_c, t_c, k_t, c2r_t, t_t)
    full = model(*args, decode_index=torch.tensor([0, 5]), generator=torch.Generator().manual_seed(0))
    plain = model(
        *args, decode_index=torch.tensor([0, 5]), generator=torch.Generator().manual_seed(0), render=False
    )
    assert "rgb" not in plain and "gaussians" not in plain
    torch.testing.assert_close(plain["vae_recon"], full["vae_recon"], rtol=0, atol=0)
    plain["vae_recon"].square().mean().backward()
    assert all(p.grad is None for p in model.gaussian_decoder.parameters())
    assert model.vae.decoder.conv_out.weight.grad is not None


def test_gaussian_activations_follow_storm_ranges(clip):
    out = _run(_small_model(), clip)
    g = out["gaussians"]
    g = {k: v.detach() for k, v in g.items()}
    assert float(g["depth"].min()) >= 0.2 and float(g["depth"].max()) <= 400.0
    assert float(g["scales"].max()) <= 0.5 + 1e-6 and float(g["scales"].min()) > 0
    assert 0 < float(g["opacities"].min()) and float(g["opacities"].max()) < 1
    assert 0 < float(g["colors"].min()) and float(g["colors"].max()) < 1
    torch.testing.assert_close(g["quats"].norm(dim=-1), torch.ones_like(g["quats"][..., 0]))
    # means sit on the pixel rays at the predicted z-depth: check one pixel with a textbook pinhole model
    k = clip["intrinsics"][0, 0, 0].double()
    c2r = clip_cameras(clip, torch.tensor([0]), 0)[1][0, 0, 0].double()
    row, col = 12, 20
    z = g["depth"][0, 0, 0, 0, row, col].double()
    x_cam = torch.stack([(col + 0.5 - k[0, 2]) / k[0, 0] * z, (row + 0.5 - k[1, 2]) / k[1, 1] * z, z])
    expected = c2r[:3, :3] @ x_cam + c2r[:3, 3]
    torch.testing.assert_close(g["means"][0, row * 32 + col].double(), expected, atol=1e-3, rtol=1e-4)


def test_transparent_scene_shows_sky_through_a_real_exposure_affine(clip):
    """With every opacity 0 the render is the sky colour, transformed by the full 3x3 + bias exposure."""
    model = _small_model()
    dec = model.gaussian_decoder
    ctx = torch.tensor([0, 2, 4, 6])
    k_c, c2r_c, t_c = clip_cameras(clip, ctx, 0)
    with torch.no_grad():
        g = dec.predict(model.encode(clip["images"][:, ctx]), k_c, c2r_c, t_c)
        g["opacities"] = torch.zeros_like(g["opacities"])
        matrix = torch.tensor([[0.5, 0.3, 0.1], [0.0, 0.9, 0.2], [0.4, 0.0, 0.6]])
        bias = torch.tensor([0.05, -0.1, 0.2])
        g["exposure"] = torch.cat([matrix, bias[:, None]], dim=1).expand(1, 2, 3, 4).clone()
        k_t, c2r_t, t_t = clip_cameras(clip, torch.tensor([3]), 0)
        out = dec.render(g, k_t, c2r_t, t_t, 16, 32)
    assert float(out["alpha"].abs().max()) == 0.0
    sky = out["sky"][0, 0]  # [V, 3, H, W] in [0, 1]
    expected = torch.einsum("ij,vjhw->vihw", matrix, sky) + bias[None, :, None, None]
    torch.testing.assert_close(out["rgb"][0, 0] * 0.5 + 0.5, expected, atol=1e-5, rtol=1e-5)
    # the matrix is not summed away: off-diagonal terms change channel 0
    assert float((expected[:, 0] - (0.9 * sky[:, 0] + 0.05)).abs().max()) > 1e-3


def test_gaussians_move_with_their_velocity(clip):
    """Rendering at t + dt equals rendering at t with means shifted by v * dt by hand."""
    model = _small_model()
    dec = model.gaussian_decoder
    ctx = torch.tensor([0, 2, 4, 6])
    k_c, c2r_c, t_c = clip_cameras(clip, ctx, 0)
    with torch.no_grad():
        g = dec.predict(model.encode(clip["images"][:, ctx]), k_c, c2r_c, t_c)
        g["velocities"] = torch.tensor([4.0, 0.0, 0.0]).expand_as(g["velocities"]).clone()
        k_t, c2r_t, _ = clip_cameras(clip, torch.tensor([3]), 0)
        moved = dec.render(g, k_t, c2r_t, torch.tensor([[0.5]]), 16, 32)
        shifted = dict(g, means=g["means"] + g["velocities"] * (0.5 - g["times"])[..., None])
        shifted["velocities"] = torch.zeros_like(g["velocities"])
        by_hand = dec.render(shifted, k_t, c2r_t, torch.tensor([[0.0]]), 16, 32)
    torch.testing.assert_close(moved["rgb"], by_hand["rgb"], atol=1e-5, rtol=1e-5)
    still = dict(g, velocities=torch.zeros_like(g["velocities"]))
    with torch.no_grad():
        unmoved = dec.render(still, k_t, c2r_t, torch.tensor([[0.5]]), 16, 32)
    assert float((unmoved["depth"] - moved["depth"]).abs().max()) > 0.1


def test_depth_only_render_matches_the_full_render(clip):
    """`render_depth` (no colour, sky or exposure) gives the depth and alpha of `render`."""
    model = _small_model()
    dec = model.gaussian_decoder
    ctx = torch.tensor([0, 2, 4])
    k_c, c2r_c, t_c = clip_cameras(clip, ctx, 0)
    k_t, c2r_t, t_t = clip_cameras(clip, torch.tensor([5]), 0)
    with torch.no_grad():
        g = dec.predict(model.encode(clip["images"][:, ctx]), k_c, c2r_c, t_c)
        full = dec.render(g, k_t, c2r_t, t_t, 16, 32)
        depth_only = dec.render_depth(g, k_t, c2r_t, t_t, 16, 32)
    assert float(full["alpha"].max()) > 0.5
    torch.testing.assert_close(depth_only["alpha"], full["alpha"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(depth_only["depth"], full["depth"], atol=1e-4, rtol=1e-5)


def test_save_load_round_trip_bit_for_bit(tmp_path, clip):
    model = _small_model(seed=3)
    model.save_pretrained(tmp_path / "storm")
    assert (tmp_path / "storm" / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "storm" / "gaussian_decoder" / "config.json").is_file()
    loaded = StormVAE.from_pretrained(tmp_path / "storm")
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():  # same weights, same renders (up to the CPU rasterizer's summation order)
        torch.testing.assert_close(_run(model, clip)["rgb"], _run(loaded, clip)["rgb"], atol=1e-5, rtol=1e-5)


def test_sd35_layout_vae_folder_loads_into_the_vae_part(tmp_path):
    torch.manual_seed(7)
    reference = AutoencoderKL(**TINY_VAE_CONFIG)
    reference.save_pretrained(tmp_path / "sd35" / "vae")  # a pipeline folder with its vae/ subfolder
    model = StormVAE.from_preset("tiny", vae_pretrained=tmp_path / "sd35", **SMALL_DECODER)
    ref_state = reference.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in model.vae.state_dict().items())
    assert model.vae.config.scaling_factor == 1.5305 and model.vae.config.shift_factor == 0.0609
    AutoencoderKL(**{**TINY_VAE_CONFIG, "latent_channels": 4}).save_pretrained(tmp_path / "sd15")
    with pytest.raises(ValueError, match="latent_channels"):
        load_sd35_vae(tmp_path / "sd15")
    with pytest.raises(FileNotFoundError, match="download"):
        load_sd35_vae(tmp_path / "missing")


def test_normalisation_is_the_sd3_convention():
    model = _small_model()
    # a fresh VAE starts with posterior std e^-3; mean channels keep diffusers' initialisation
    assert torch.equal(model.vae.encoder.conv_out.bias[16:], torch.full((16,), -6.0))
    assert float(model.vae.encoder.conv_out.bias[:16].abs().max()) < 1.0
    z = torch.randn(2, 16, 4, 6)
    torch.testing.assert_close(model.normalize(z), (z - 0.0609) * 1.5305)
    torch.testing.assert_close(model.denormalize(model.normalize(z)), z)


def _vit_block_params(width: int, mlp: int) -> int:
    attention = width * 3 * width + 3 * width + width * width + width
    return attention + width * mlp + mlp + mlp * width + width + 4 * width


def test_full_preset_builds_on_meta_device(capsys):
    with torch.device("meta"):
        model = StormVAE.from_preset("full")
    vae_params = sum(p.numel() for p in model.vae.parameters())
    dec_params = sum(p.numel() for p in model.gaussian_decoder.parameters())
    vit_params = sum(p.numel() for p in model.gaussian_decoder.transformer.parameters())
    with capsys.disabled():
        print(f"\nSTORM-VAE full: VAE {vae_params / 1e6:.2f} M, Gaussian decoder {dec_params / 1e6:.2f} M")
    assert model.vae.config.block_out_channels == SD35_VAE_CONFIG["block_out_channels"]
    assert 83.0e6 < vae_params < 84.5e6  # SD3.5 VAE: 83.8 M (DESIGN §6)
    cfg = model.gaussian_decoder.config
    assert (cfg.depth, cfg.width, cfg.num_heads, model.gaussian_decoder.pixel_patch) == (12, 768, 12, 8)
    assert vit_params == 12 * _vit_block_params(768, 3072) + 2 * 768
    assert next(model.parameters()).device.type == "meta"


def test_decoder_rejects_a_wrong_key_upsampler():
    with pytest.raises(ValueError, match="stages"):
        GaussianDecoder(width=32, depth=1, num_heads=2, key_upsampler_channels=(8, 8))


def test_gradient_checkpointing_gives_the_same_gradients(clip):
    grads = []
    for checkpointing in (False, True):
        model = _small_model(seed=5)
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.gaussian_decoder.transformer.gradient_checkpointing
        out = _run(model, clip)
        (out["rgb"].square().mean() + out["vae_recon"].abs().mean()).backward()
        grads.append(model.gaussian_decoder.transformer.blocks[0].attn.qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)
