#!/usr/bin/env python
"""Write scikit-learn's 8x8 digits as a folder of PNG images, one sub-folder per class.

    python scripts/make_digit_images.py my_images                # my_images/0 ... my_images/9
    python scripts/make_digit_images.py my_images --split        # my_images/train/0 ..., my_images/test/0 ...
    python scripts/make_digit_images.py my_images --classes 3 --per-class 40 --size 16

The folder is what ``neuroprune synaptic --data my_images`` reads. The test suite writes the
same folders with :func:`write_digit_images`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def write_digit_images(root: str | Path, classes: int = 10, per_class: int | None = None, size: int = 8,
                       split: bool = False) -> Path:
    """Write digits as grey PNGs under ``root/CLASS/`` (or ``root/train|test/CLASS/`` with ``split``); returns ``root``.

    Args:
        root: the folder to write (created if needed).
        classes: how many digit classes, 0 .. classes - 1.
        per_class: images per class (the first ones of each); None for all (about 180).
        size: the images' width and height in pixels (8 is the original resolution).
        split: also write a test split: every fifth image of a class goes to ``test/``.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = Path(root)
    for label in range(classes):
        images = digits.images[digits.target == label][:per_class]
        for index, image in enumerate(images):
            part = ("test" if index % 5 == 4 else "train") if split else ""
            folder = root / part / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            pixels = Image.fromarray(np.rint(image * 255 / 16).astype(np.uint8), mode="L")
            if size != 8:
                pixels = pixels.resize((size, size), Image.Resampling.NEAREST)
            pixels.save(folder / f"{label}_{index:03d}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to write")
    parser.add_argument("--classes", type=int, default=10, help="digit classes 0 .. N-1 [10]")
    parser.add_argument("--per-class", type=int, default=None, help="images per class [all, about 180]")
    parser.add_argument("--size", type=int, default=8, help="image width and height in pixels [8]")
    parser.add_argument("--split", action="store_true", help="write train/ and test/ sub-folders")
    args = parser.parse_args()
    write_digit_images(args.root, args.classes, args.per_class, args.size, args.split)
    count = sum(1 for _ in args.root.rglob("*.png"))
    print(f"wrote {count} PNG images to {args.root}")


if __name__ == "__main__":
    main()
