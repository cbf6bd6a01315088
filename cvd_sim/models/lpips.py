"""LPIPS (VGG16 variant) from local weight files; nothing is downloaded.

The VGG16 backbone comes from a torchvision-format state dict (`features.N.weight`, e.g. the file
`vgg16-397923af.pth`), the linear calibration layers from the file torchmetrics ships (`lpips_models/vgg.pth`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# torchvision vgg16 `features`: conv widths, "M" = max-pool; LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_TAPS = (3, 8, 15, 22, 29)
_TAP_CHANNELS = (64, 128, 256, 512, 512)


def torchmetrics_lpips_linear_weights() -> Path:
    """Path of the LPIPS linear-layer weights shipped inside torchmetrics."""
    import torchmetrics.functional.image as tm_image

    return Path(tm_image.__file__).parent / "lpips_models" / "vgg.pth"


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(item)
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """Learned perceptual distance; inputs [N, 3, H, W] in [-1, 1] -> [N]. Weights are frozen."""

    def __init__(self):
        super().__init__()
        self.features = _vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _TAP_CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, vgg_weights: str | Path, linear_weights: str | Path | None = None) -> LPIPS:
        """Load the VGG16 backbone (torchvision state dict) and the LPIPS linear layers (torchmetrics format)."""
        model = cls()
        vgg_state = torch.load(vgg_weights, map_location="cpu", weights_only=True)
        features = {k[len("features.") :]: v for k, v in vgg_state.items() if k.startswith("features.")}
        model.features.load_state_dict(features)
        lin_state = torch.load(
            linear_weights or torchmetrics_lpips_linear_weights(), map_location="cpu", weights_only=True
        )
        for i, lin in enumerate(model.lins):
            lin.weight.copy_(lin_state[f"lin{i}.model.1.weight"])
        return model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.shift) / self.scale
        y = (y.float() - self.shift) / self.scale
        total = x.new_zeros(x.shape[0])
        tap = 0
        for i, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if i == _TAPS[tap]:
                fx = x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10)
                fy = y / (y.square().sum(1, keepdim=True).sqrt() + 1e-10)
                total = total + self.lins[tap]((fx - fy).square()).mean(dim=(1, 2, 3))
                tap += 1
                if tap == len(_TAPS):
                    break
        return total
