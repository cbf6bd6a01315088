"""Stage-1 loss terms and the local-weights LPIPS."""

from __future__ import annotations

import warnings

import pytest
import torch
from cvd_sim.training.losses import LossWeights, Perceptual, depth_loss, kl_divergence, sky_opacity_loss
from cvd_sim.training.vae_trainer import stage_one_loss
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from cvd_sim.models.lpips import LPIPS, _vgg16_features, torchmetrics_lpips_linear_weights


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mean, logvar = torch.randn(2, 16, 3, 4), torch.randn(2, 16, 3, 4)
    expected = torch_kl(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).mean()
    torch.testing.assert_close(kl_divergence(mean, logvar), expected)


def test_depth_losses_on_hand_numbers():
    pred = torch.tensor([[[[2.0, 4.0, 7.0]]]])
    gt = torch.tensor([[[[1.0, 4.0, 0.0]]]])  # last pixel unknown
    assert float(depth_loss(pred, gt, "l1_max_normalized")) == pytest.approx((1.0 + 0.0) / 2 / 4.0)
    assert float(depth_loss(pred, gt, "log_l1")) == pytest.approx(float(torch.log(torch.tensor(2.0))) / 2)
    assert float(depth_loss(pred, torch.zeros_like(gt))) == 0.0


def test_sky_opacity_loss_uses_only_known_masks():
    alpha = torch.tensor([[0.2, 1.0], [0.0, 0.0]]).view(2, 1, 1, 2)
    sky = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).view(2, 1, 1, 2)
    assert float(sky_opacity_loss(alpha, sky, torch.tensor([True, False]))) == pytest.approx(0.1)
    assert float(sky_opacity_loss(alpha, sky, torch.tensor([False, False]))) == 0.0


@pytest.mark.filterwarnings("ignore:LPIPS VGG16 weights not found")
@pytest.mark.parametrize(("kind", "expected"), [("l1", (0.5 + 0.25) / 2), ("mse", (0.25 + 0.0625) / 2)])
def test_vae_reconstruction_error_kind(kind, expected):
    """One decoded image of one context frame, two pixels off by 0.5 and 0.25: L1 or squared error."""
    images = torch.zeros(1, 1, 1, 1, 1, 2)  # [B, T, V, 3, H, W]
    out = {
        "mean": torch.zeros(1, 1, 1, 16, 1, 1),
        "logvar": torch.zeros(1, 1, 1, 16, 1, 1),  # KL of N(0, 1) is 0
        "vae_recon": torch.tensor([0.5, -0.25]).view(1, 1, 1, 1, 2),
        "vae_index": torch.tensor([0]),
    }
    pick = {k: torch.tensor([0]) for k in ("context", "targets", "target_views")}
    weights = LossWeights(vae_recon_kind=kind)
    loss, scalars = stage_one_loss(
        out, {"images": images}, pick, weights, Perceptual(None, torch.device("cpu")), 0
    )
    assert float(loss) == pytest.approx(expected) and scalars["loss_vae_recon"] == pytest.approx(expected)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    torch.manual_seed(0)
    features = _vgg16_features()
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files carry the classifier too
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(state, path)
    return path, state


def test_lpips_loads_local_weights_and_measures_distance(vgg_file):
    path, state = vgg_file
    net = LPIPS.from_files(path)
    assert torch.equal(net.features[28].weight, state["features.28.weight"])
    lin = torch.load(torchmetrics_lpips_linear_weights(), map_location="cpu", weights_only=True)
    assert torch.equal(net.lins[4].weight, lin["lin4.model.1.weight"])
    torch.manual_seed(1)
    x = torch.rand(2, 3, 24, 24) * 2 - 1
    assert torch.allclose(net(x, x), torch.zeros(2), atol=1e-6)
    near, far = net(x, (x + 0.05).clamp(-1, 1)), net(x, -x)
    assert (near > 0).all() and (far > near).all()
    assert not any(p.requires_grad for p in net.parameters())


def test_perceptual_without_weights_warns_once_and_is_zero(tmp_path, vgg_file):
    Perceptual._warned = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = Perceptual(tmp_path / "missing.pth", torch.device("cpu"))
        Perceptual(None, torch.device("cpu"))
    assert len([w for w in caught if "LPIPS" in str(w.message)]) == 1
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    assert not first.available and float(first(x, x * 0).detach()) == 0.0
    assert Perceptual(vgg_file[0], torch.device("cpu")).available
