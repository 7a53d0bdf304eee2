"""A synthetic, learnable image folder for trying own-data runs: ``root/<class>/NNNN.png``.

Each class is a shape (circle, square, triangle, ...), half the time in its class colour;
position, size, colour, background, a distractor shape and pixel noise vary per image. Everything comes from one seeded
``numpy`` generator, so the same arguments write the same files.

Command line: ``python -m nas.data._make_folder OUT_DIR [--per-class 120] [--size 36] [--channels 3]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SHAPES", "make_image_folder"]

SHAPES = ("circle", "square", "triangle", "cross", "ring", "frame", "diamond", "hbar", "vbar", "xmark")
_COLOURS = ((230, 60, 50), (60, 190, 70), (50, 90, 230), (235, 200, 40), (200, 60, 210),
            (40, 200, 210), (245, 140, 30), (140, 90, 40), (150, 150, 150), (240, 240, 240))


def _draw(draw: Any, shape: str, cx: float, cy: float, r: float, fill: tuple[int, ...]) -> None:
    """Draw ``shape`` centred at (cx, cy) with half-size ``r`` on a PIL ImageDraw."""
    w = max(1.0, r / 2.5)
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    elif shape == "cross":
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=int(round(w)))
    elif shape == "frame":
        draw.rectangle(box, outline=fill, width=int(round(w)))
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape == "hbar":
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
    elif shape == "vbar":
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
    else:  # xmark
        draw.line((cx - r, cy - r, cx + r, cy + r), fill=fill, width=int(round(w)))
        draw.line((cx - r, cy + r, cx + r, cy - r), fill=fill, width=int(round(w)))


def make_image_folder(root: str | os.PathLike[str], *, num_classes: int = 10, per_class: int = 120,
                      size: int = 36, channels: int = 3, seed: int = 0, noise: float = 40.0,
                      colour_prob: float = 0.5) -> Path:
    """Write ``num_classes * per_class`` PNGs of ``size`` x ``size`` pixels (``channels`` 1 or 3)
    to ``root/<shape>/<index>.png``; return ``root``. Existing files of the same names are replaced.

    A shape has its class colour (jittered) with probability ``colour_prob``, else a random one;
    half the images also hold a small distractor shape of another class; ``noise`` is the std of
    the Gaussian pixel noise (0..255 scale)."""
    from PIL import Image, ImageDraw

    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be in [2, {len(SHAPES)}], got {num_classes}")
    if per_class < 1 or size < 8 or channels not in (1, 3):
        raise ValueError(f"need per_class >= 1, size >= 8 and channels 1 or 3; got {per_class}, {size}, {channels}")
    rng = np.random.default_rng(seed)
    root = Path(root)

    def random_colour(c: int) -> tuple[int, ...]:
        base = np.asarray(_COLOURS[c]) if rng.random() < colour_prob else rng.integers(60, 256, 3)
        return tuple(int(v) for v in np.clip(base + rng.normal(0, 30, 3), 0, 255))

    for c, shape in enumerate(SHAPES[:num_classes]):
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 110, 3)))
            draw = ImageDraw.Draw(img)
            if rng.random() < 0.5:  # a small distractor of another class, drawn first
                other = int(rng.integers(1, num_classes)) + c
                dx, dy = (float(v) for v in rng.uniform(0.1, 0.9, 2) * size)
                _draw(draw, SHAPES[other % num_classes], dx, dy, size * rng.uniform(0.08, 0.13),
                      random_colour(other % num_classes))
            r = size * rng.uniform(0.16, 0.36)
            cx, cy = (float(v) for v in size / 2 + rng.uniform(-0.2, 0.2, 2) * size)
            _draw(draw, shape, cx, cy, r, random_colour(c))
            pixels = np.asarray(img, dtype=np.float64) + rng.normal(0, noise, (size, size, 3))
            img = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
            (img if channels == 3 else img.convert("L")).save(folder / f"{i:04d}.png")
    return root
