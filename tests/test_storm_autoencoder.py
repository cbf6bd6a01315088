"""Growing a trained STORM-VAE without changing its function: the widened VAE decoder and the Gaussian head MLP."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from cvd_sim.training.engine import load_config
from cvd_sim.training.vae_trainer import VaeTrainConfig, build_model, train_vae
from diffusers import AutoencoderKL

from cvd_sim.models.storm_autoencoder import StormAutoencoderKL, widen_decoder
from cvd_sim.models.storm_vae import TINY_VAE_CONFIG, StormVAE

sys.path.insert(0, str(Path(__file__).parent))
from test_training_engine import write_config
from test_vae_analytic_scene import AnalyticClips
from test_vae_model import SMALL_DECODER, _run

WIDE = [32, 64, 128, 128]


@pytest.fixture(scope="module")
def clip():
    return {k: (v[None] if torch.is_tensor(v) else v) for k, v in AnalyticClips(num_clips=1)[0].items()}


def _trained_looking_vae(seed: int = 0) -> AutoencoderKL:
    """A tiny AutoencoderKL whose GroupNorm affines and biases are random too (a fresh one has 1s and 0s)."""
    torch.manual_seed(seed)
    vae = AutoencoderKL(**TINY_VAE_CONFIG)
    with torch.no_grad():
        for name, p in vae.decoder.named_parameters():
            if p.dim() == 1:
                p.copy_(
                    torch.randn_like(p) * 0.3 + (1.0 if "norm" in name and name.endswith("weight") else 0.0)
                )
    return vae.eval()


def test_widened_decoder_computes_the_same_images_and_the_encoder_is_untouched():
    vae = _trained_looking_vae()
    wide = widen_decoder(vae, WIDE, torch.Generator().manual_seed(0)).eval()
    assert list(wide.decoder.mid_block.resnets[0].conv1.weight.shape[:2]) == [128, 128]
    assert (
        wide.decoder.up_blocks[-1].resnets[0].conv1.weight.shape[0] == 32
    )  # the full-resolution block stays
    n_old = sum(p.numel() for p in vae.decoder.parameters())
    assert sum(p.numel() for p in wide.decoder.parameters()) > 2.5 * n_old
    latents = torch.randn(3, 16, 8, 14)
    images = torch.rand(2, 3, 64, 112) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(
            wide.decode(latents).sample, vae.decode(latents).sample, atol=2e-5, rtol=1e-4
        )
        assert torch.equal(wide.encode(images).latent_dist.mean, vae.encode(images).latent_dist.mean)


def test_copied_channels_part_ways_from_the_first_gradient_step():
    wide = widen_decoder(_trained_looking_vae(), WIDE, torch.Generator().manual_seed(0))
    conv = wide.decoder.conv_in  # a channel and its copy: rows 0 and 4 (groups of 8 = 4 old + their 4 copies)
    assert torch.equal(conv.weight[0], conv.weight[4])
    wide.decode(torch.randn(2, 16, 8, 14)).sample.square().mean().backward()
    assert not torch.allclose(conv.weight.grad[0], conv.weight.grad[4])


def test_widening_is_seeded_and_rejects_widths_it_cannot_reach():
    vae = _trained_looking_vae()
    a = widen_decoder(vae, WIDE, torch.Generator().manual_seed(3)).state_dict()
    b = widen_decoder(vae, WIDE, torch.Generator().manual_seed(3)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="64 -> 96"):
        widen_decoder(vae, [32, 64, 96, 128], torch.Generator())
    with pytest.raises(
        ValueError, match="conv_shortcut"
    ):  # the full-resolution block's shortcut would vanish
        widen_decoder(vae, [64, 64, 64, 64], torch.Generator())
    with pytest.raises(ValueError, match="4 widths"):
        widen_decoder(vae, [32, 64, 128], torch.Generator())


def test_wide_vae_saves_and_loads_bit_for_bit_and_plain_folders_still_load(tmp_path):
    wide = widen_decoder(_trained_looking_vae(), WIDE, torch.Generator().manual_seed(0))
    wide.save_pretrained(tmp_path / "wide")
    loaded = StormAutoencoderKL.from_pretrained(tmp_path / "wide")
    assert list(loaded.config.decoder_block_out_channels) == WIDE
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in wide.state_dict().items())
    _trained_looking_vae().save_pretrained(tmp_path / "plain")  # SD3.5's own `vae/` is a plain AutoencoderKL
    assert StormAutoencoderKL.from_pretrained(tmp_path / "plain").config.decoder_block_out_channels is None
    with pytest.raises(ValueError, match="norm_num_groups"):
        StormAutoencoderKL(**{**TINY_VAE_CONFIG, "decoder_block_out_channels": [32, 64, 72, 128]})


def test_gaussian_head_mlp_starts_as_the_same_function_then_trains(clip):
    torch.manual_seed(0)
    model = StormVAE.from_preset("tiny", **SMALL_DECODER)
    grown = StormVAE(model.vae, model.gaussian_decoder.with_head_hidden(16))
    with torch.no_grad():
        before, after = _run(model, clip), _run(grown, clip)
    for key in ("rgb", "depth", "alpha"):
        torch.testing.assert_close(after[key], before[key], atol=1e-5, rtol=1e-5)
    _run(grown, clip)["rgb"].square().mean().backward()
    assert grown.gaussian_decoder.gaussian_head_mlp[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="already"):
        grown.gaussian_decoder.with_head_hidden(16)


def test_a_run_grows_its_start_folder_and_resumes_to_the_grown_model(tmp_path):
    torch.manual_seed(0)
    StormVAE.from_preset("tiny", **SMALL_DECODER).save_pretrained(tmp_path / "start")
    path = write_config(tmp_path, "grow", max_steps=2)
    cfg = yaml.safe_load(path.read_text())
    cfg["model"] = {
        "init_from": str(tmp_path / "start"),
        "widen_vae_decoder": WIDE,
        "gaussian_head_hidden": 16,
        "freeze": ["encoder"],
    }
    path.write_text(yaml.safe_dump(cfg))
    built = build_model(load_config(path, VaeTrainConfig).model)
    assert list(built.vae.config.decoder_block_out_channels) == WIDE
    train_vae(path, dataset=AnalyticClips(num_clips=2), stop_at=1)
    train_vae(path, resume=True, dataset=AnalyticClips(num_clips=2))
    final = StormVAE.from_pretrained(tmp_path / "grow" / "final")
    assert final.gaussian_decoder.config.head_hidden == 16
    assert list(final.vae.config.decoder_block_out_channels) == WIDE
    start = StormVAE.from_pretrained(tmp_path / "start")
    assert all(
        torch.equal(v, final.vae.encoder.state_dict()[k]) for k, v in start.vae.encoder.state_dict().items()
    )
