"""Writing frames to .mp4 (ffmpeg from imageio-ffmpeg) or .gif."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def even_size(frame: np.ndarray) -> np.ndarray:
    """Pad `[H, W, 3]` to even height and width, which H.264 needs."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write uint8 frames `[H, W, 3]` (all the same size) to `path`; the suffix picks mp4 or gif."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, [np.asarray(f, dtype=np.uint8) for f in frames], duration=1000.0 / fps, loop=0)
    else:
        with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
            for frame in frames:
                writer.append_data(even_size(np.asarray(frame, dtype=np.uint8)))
    return path
