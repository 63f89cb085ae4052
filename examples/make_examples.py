"""Regenerate examples/images/ from the public-domain / CC0 photographs that ship inside scikit-image.

    pip install scikit-image && python examples/make_examples.py

scikit-image is needed only here, never at run time or in the tests. The licence of each photo is the one
scikit-image documents in the docstring of its `skimage.data` function (see examples/README.md).
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

IMAGES_DIR = pathlib.Path(__file__).resolve().parent / "images"
QUALITY = 90
MAX_SIDE = 1024
MAX_BYTES = 300_000


def _rocket_portrait(rgb: np.ndarray) -> np.ndarray:
    """A 9:16 crop of the launch photo centred on the rocket (x ~ 322 of 640): shows the native-portrait mode."""
    height = rgb.shape[0]
    width = round(height * 9 / 16)
    left = min(max(322 - width // 2, 0), rgb.shape[1] - width)
    return rgb[:, left:left + width]


def _sources() -> dict[str, np.ndarray]:
    from skimage import data

    rocket = data.rocket()
    return {
        "astronaut_eileen_collins.jpg": data.astronaut(),
        "cameraman_on_campus_lawn.jpg": data.camera(),
        "cat_chelsea.jpg": data.chelsea(),
        "coffee_cup_on_wood.jpg": data.coffee(),
        "hubble_deep_field.jpg": data.hubble_deep_field(),
        "rocket_on_launch_pad_at_dusk.jpg": rocket,
        "rocket_on_launch_pad_portrait.jpg": _rocket_portrait(rocket),
    }


def save_jpeg(array: np.ndarray, path: pathlib.Path) -> None:
    image = Image.fromarray(array).convert("RGB")  # the grayscale camera photo too: plain RGB JPEGs everywhere
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    image.save(path, "JPEG", quality=QUALITY, optimize=True, progressive=True)
    if path.stat().st_size >= MAX_BYTES:
        raise SystemExit(f"{path.name} is {path.stat().st_size} bytes, over the {MAX_BYTES} limit")


def main() -> None:
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    for name, array in _sources().items():
        path = IMAGES_DIR / name
        save_jpeg(array, path)
        with Image.open(path) as image:
            print(f"{path.relative_to(IMAGES_DIR.parent.parent)}  {image.width}x{image.height}  "
                  f"{path.stat().st_size // 1000} kB")


if __name__ == "__main__":
    main()
