"""`WorldModelOptions`: the typed `backend_options` of the world-model backend (model folder, sampling, depth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import cvd_sim

# Where the trained tiny checkpoint is shipped (a WorldModel folder); `model: null` means this folder.
SHIPPED_MODEL = Path(cvd_sim.__file__).parent / "weights" / "worldmodel-tiny"


class WorldModelOptions(BaseModel):
    """Sampling and reconstruction settings of `WorldModelBackend`.

    The defaults are the fast settings (the distilled DiT in one step when the folder has it); `paper()` gives
    the paper's (the DiT itself, 50 steps, CFG 3.5, depth splatted from 3 latents).
    depth: `splat` = Gaussians of the last `depth_context` latents splatted into the new cameras (STORM);
    `ray` = the newest frame's per-pixel Gaussian depth read along its own rays (no rasterisation).
    warmup: `raycast` = the first frame is rendered by the raycast backend and encoded; `generate` = sampled
    from scratch from the layout and text.
    """

    model_config = ConfigDict(extra="forbid")

    model: str | None = None  # WorldModel folder; None = the shipped checkpoint
    device: str = "cpu"
    # the one-step student in the folder's dit_distilled/ (distilled from the DiT's 3-step sampler); None = when
    # the folder has one and num_steps is unset or 1. False = the DiT itself
    distilled: bool | None = None
    # Euler steps; None = 1 with the distilled DiT (what it was trained for), 3 with the DiT itself
    num_steps: Annotated[int, Field(ge=1, le=1000)] | None = None
    # timestep shift of the sampling schedule (None = the model's own scheduler, shift 1 for the shipped one).
    # A large shift spends the few steps near pure noise, where the frame's layout is decided: closed-loop PSNR
    # at 3 steps 20.84 dB with shift 10 against 19.68 with 3 (`agents.fidelity.run_fidelity`, session-3 model)
    shift: Annotated[float, Field(gt=0)] | None = 10.0
    guidance_scale: Annotated[float, Field(ge=0)] = 1.0  # <= 1 turns classifier-free guidance off
    cfg_single_forward: bool = True  # conditional and unconditional branches in one batched forward
    num_references: Annotated[int, Field(ge=1, le=8)] = 3
    # run the reference frames once per step of the env, not at every sampling step (same frames; needs a DiT
    # with causal temporal attention); None = on when the DiT is causal and samples in more than one step (at one
    # step, one pass over the window measured 1.02-1.36x faster), True on a non-causal DiT is an error
    reference_cache: bool | None = None
    warmup: Literal["raycast", "generate"] = "raycast"
    # splatting context frames: on the session-3 model, AbsRel 0.30 for 3 frames against 0.46 for 1 and 1.57 for
    # `ray` (per-pixel depth of transparent Gaussians is arbitrary; splatting weighs it by opacity)
    depth: Literal["splat", "ray"] = "splat"
    # latents splatted for depth. 2 (the fast default) against 3 (`paper()`): depth 137-156 against 239-264 ms
    # per step, the whole step 1.38x faster (`cvd-sim bench env --backend worldmodel`; the ViT's attention grows
    # with the square of the tokens), closed-loop AbsRel 0.165 against 0.149 (`cvd-sim evaluate --fidelity
    # --option depth_context=N`, session 9's decoders; 0.163 with 2 on the shipped stage-1g decoders)
    depth_context: Annotated[int, Field(ge=1, le=8)] = 2
    sky_alpha: Annotated[float, Field(ge=0, le=1)] = 0.5  # splat depth: alpha below this is sky (depth 0)
    compile: bool = False  # torch.compile the DiT
    # bfloat16 autocast on CPU for the DiT, the VAE decode and the Gaussian decoder's ViT (the DiT always uses it
    # on CUDA; splatting stays float32); None = on when the CPU has native bfloat16 (oneDNN), where it measured
    # 1.2x faster per step at 47 dB from float32, and the Gaussian prediction 1.18x at 0.5 % mean depth change
    cpu_bf16: bool | None = None
    # the VAE in channels-last memory format (StormVAE's default, 1.35x in training); False = contiguous
    channels_last: bool = True
    threads: Annotated[int, Field(ge=0)] = 0  # raycast warm-up threads (0 = default)

    def use_distilled(self, has_student: bool) -> bool:
        """Whether to sample with the distilled DiT, given whether the folder has one."""
        if self.distilled is not None:
            return self.distilled
        return has_student and self.num_steps in (None, 1)

    def steps(self, distilled: bool) -> int:
        """Euler steps to sample with, given whether the distilled DiT is used."""
        return self.num_steps or (1 if distilled else 3)

    def use_cpu_bf16(self) -> bool:
        if self.cpu_bf16 is not None:
            return self.cpu_bf16
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())

    @classmethod
    def paper(cls, **fields) -> WorldModelOptions:
        """The paper's sampling: the DiT itself (not the distilled one), 50 steps of its own schedule, CFG 3.5
        (two branches in one forward), the Gaussians of the last 3 latents splatted for depth."""
        paper = {
            "distilled": False,
            "num_steps": 50,
            "shift": None,
            "guidance_scale": 3.5,
            "depth": "splat",
            "depth_context": 3,
        }
        return cls(**{**paper, **fields})

    def model_folder(self) -> Path:
        """The WorldModel folder to load; a clear error when the shipped checkpoint is missing."""
        folder = Path(self.model) if self.model else SHIPPED_MODEL
        if not folder.is_dir():
            hint = (
                "pass backend_options={'model': FOLDER} (a folder written by WorldModel.save_pretrained)"
                if self.model is None
                else "give a folder written by WorldModel.save_pretrained or `cvd-sim train dit`"
            )
            raise FileNotFoundError(f"world-model checkpoint not found at {folder}; {hint}")
        return folder


def parse_options(options: dict) -> WorldModelOptions:
    """Validate backend options, raising ValueError("backend_options.FIELD: reason")."""
    try:
        return WorldModelOptions(**options)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ValueError(f"backend_options.{where}: {first['msg']}") from None
