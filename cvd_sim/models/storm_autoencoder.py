"""A diffusers AutoencoderKL whose decoder may be wider than its encoder, and the function-preserving (Net2Net)
widening that grows a trained decoder into a wider one without changing its output or the latent space."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import Decoder


class StormAutoencoderKL(AutoencoderKL):
    """AutoencoderKL plus `decoder_block_out_channels` (encoder order, like `block_out_channels`; None = same).

    A folder saved by a plain AutoencoderKL (SD3.5's `vae/`) loads unchanged: the new entry defaults to None.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",),
        up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",),
        block_out_channels: tuple[int, ...] = (64,),
        layers_per_block: int = 1,
        act_fn: str = "silu",
        latent_channels: int = 4,
        norm_num_groups: int = 32,
        sample_size: int = 32,
        scaling_factor: float = 0.18215,
        shift_factor: float | None = None,
        latents_mean: tuple[float, ...] | None = None,
        latents_std: tuple[float, ...] | None = None,
        force_upcast: bool = True,
        use_quant_conv: bool = True,
        use_post_quant_conv: bool = True,
        mid_block_add_attention: bool = True,
        decoder_block_out_channels: tuple[int, ...] | None = None,
    ):
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            act_fn=act_fn,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            sample_size=sample_size,
            scaling_factor=scaling_factor,
            shift_factor=shift_factor,
            latents_mean=latents_mean,
            latents_std=latents_std,
            force_upcast=force_upcast,
            use_quant_conv=use_quant_conv,
            use_post_quant_conv=use_post_quant_conv,
            mid_block_add_attention=mid_block_add_attention,
        )
        if decoder_block_out_channels is not None:
            if len(decoder_block_out_channels) != len(block_out_channels):
                raise ValueError(
                    f"decoder_block_out_channels {list(decoder_block_out_channels)} needs "
                    f"{len(block_out_channels)} entries, like block_out_channels"
                )
            if any(c % norm_num_groups for c in decoder_block_out_channels):
                raise ValueError(
                    f"decoder_block_out_channels {list(decoder_block_out_channels)}: every width must divide "
                    f"into norm_num_groups={norm_num_groups} groups"
                )
            self.decoder = Decoder(
                in_channels=latent_channels,
                out_channels=out_channels,
                up_block_types=up_block_types,
                block_out_channels=decoder_block_out_channels,
                layers_per_block=layers_per_block,
                norm_num_groups=norm_num_groups,
                act_fn=act_fn,
                mid_block_add_attention=mid_block_add_attention,
            )


class _Doubling:
    """How a width doubles: every GroupNorm group holds its old channels then their copies, so the group's mean
    and variance are unchanged. index [2w] = old channel of each new one; first [2w] = not a copy; mate [2w] =
    position of the twin."""

    def __init__(self, width: int, groups: int):
        per_group = width // groups
        new = torch.arange(2 * width)
        offset = new % (2 * per_group)
        self.index = (new // (2 * per_group)) * per_group + offset % per_group
        self.first = offset < per_group
        self.mate = torch.where(self.first, new + per_group, new - per_group)


def _widen_tensor(
    old: torch.Tensor, new_shape: torch.Size, doublings: dict[int, _Doubling], gen: torch.Generator
) -> torch.Tensor:
    """Copy `old` into `new_shape`: a doubled output dim (0) repeats rows; a doubled input dim (1, weights only)
    splits each old column between a channel and its copy with random shares summing to one."""
    out = old
    if new_shape[0] != old.shape[0]:
        out = out.index_select(0, doublings[old.shape[0]].index)
    if old.dim() > 1 and new_shape[1] != old.shape[1]:
        d = doublings[old.shape[1]]
        out = out.index_select(1, d.index)
        share = 0.25 + 0.5 * torch.rand(out.shape, generator=gen, dtype=torch.float32).to(out.dtype)
        share = torch.where(
            d.first.view(1, -1, *[1] * (out.dim() - 2)), share, 1.0 - share.index_select(1, d.mate)
        )
        out = out * share
    if out.shape != new_shape:
        raise ValueError(
            f"cannot widen a {tuple(old.shape)} tensor to {tuple(new_shape)}: each width must stay or double"
        )
    return out


def _old_tensor(old_state: dict[str, torch.Tensor], name: str, shape: torch.Size) -> torch.Tensor:
    """`name` from the old decoder; a shortcut the old block did not need (same width in and out) is the
    identity."""
    if name in old_state:
        return old_state[name]
    if name.endswith("conv_shortcut.weight"):  # [out, in] is [c, 2c] or [2c, c]: the old block had c and c
        width = min(shape[0], shape[1])
        return torch.eye(width).view(width, width, 1, 1)
    if name.endswith("conv_shortcut.bias"):
        return torch.zeros(shape[0])
    raise KeyError(f"widen_decoder: the old decoder has no {name}")


@torch.no_grad()
def widen_decoder(
    vae: AutoencoderKL, decoder_block_out_channels: list[int], generator: torch.Generator
) -> StormAutoencoderKL:
    """A StormAutoencoderKL with `vae`'s encoder and a decoder of `decoder_block_out_channels`, each width the old
    one or twice it, computing the same function as `vae`'s decoder (to float rounding); training then uses the
    new channels. Pairs of copies get different outgoing shares, so their gradients differ from the first step."""
    old_widths = list(vae.config.get("decoder_block_out_channels") or vae.config.block_out_channels)
    if len(old_widths) != len(decoder_block_out_channels):
        raise ValueError(
            f"widen_decoder: {len(old_widths)} widths expected, got {decoder_block_out_channels}"
        )
    for old, new in zip(old_widths, decoder_block_out_channels):
        if new not in (old, 2 * old):
            raise ValueError(f"widen_decoder: width {old} -> {new}; each width must stay or double")
    wide = StormAutoencoderKL.from_config(
        vae.config, decoder_block_out_channels=list(decoder_block_out_channels)
    )
    kept = {k: v for k, v in vae.state_dict().items() if not k.startswith("decoder.")}
    missing, unexpected = wide.load_state_dict(
        kept, strict=False
    )  # encoder and any quant convs, as they were
    if unexpected or any(not k.startswith("decoder.") for k in missing):
        raise RuntimeError(f"widen_decoder: unexpected {unexpected}, missing {missing}")
    groups = vae.config.norm_num_groups
    doublings = {old: _Doubling(old, groups) for old in old_widths}
    old_state, wide_state = vae.decoder.state_dict(), wide.decoder.state_dict()
    dropped = sorted(old_state.keys() - wide_state.keys())
    if dropped:  # e.g. a block's 1x1 shortcut when its input and output widths become equal
        raise ValueError(
            f"widen_decoder: widths {list(decoder_block_out_channels)} have no place for {dropped}; "
            "the function cannot be kept"
        )
    new_state = {}
    for name, tensor in wide_state.items():
        old = _old_tensor(old_state, name, tensor.shape)
        new_state[name] = _widen_tensor(old, tensor.shape, doublings, generator)
        if ".attentions." in name and ".to_q." in name and tensor.shape[0] != old.shape[0]:
            new_state[name].mul_(2**-0.5)  # doubled q and k double q.k; the softmax input stays
    wide.decoder.load_state_dict(new_state)
    return wide
