"""Resize-and-centre-crop of images and label maps, consistent with `resize_crop_intrinsics`."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cvd_sim.geometry.camera import resize_crop_box


def resize_crop(image: Image.Image, dst_hw: tuple[int, int], resample=Image.BICUBIC) -> Image.Image:
    """Scale to cover (H, W) and crop the centre, sampling exactly the source region the intrinsics assume."""
    src_hw = (image.height, image.width)
    if src_hw == tuple(dst_hw):
        return image
    scale, (left, top) = resize_crop_box(src_hw, dst_hw)
    h, w = dst_hw
    region = (left / scale, top / scale, (left + w) / scale, (top + h) / scale)
    return image.resize((w, h), resample=resample, box=region, reducing_gap=None)


def load_rgb(path: str, dst_hw: tuple[int, int]) -> np.ndarray:
    """Image file -> [3, H, W] float32 in [-1, 1]."""
    with Image.open(path) as im:
        arr = np.asarray(resize_crop(im.convert("RGB"), dst_hw), np.float32)
    return arr.transpose(2, 0, 1) / 127.5 - 1.0


def load_label(path: str, dst_hw: tuple[int, int]) -> np.ndarray:
    """Integer PNG (8 or 16 bit) -> [H, W] int64, nearest-neighbour resampled."""
    with Image.open(path) as im:
        arr = np.asarray(im).astype(np.int32)
    return np.asarray(resize_crop(Image.fromarray(arr), dst_hw, Image.NEAREST), np.int64)
