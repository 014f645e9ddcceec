"""Generate a small semantic-segmentation set of handwritten digits.

The segmentation twin of ``digits_coco.py``: the same 128×128 scenes
(colour-gradient background, noise, clutter lines and rectangles, 1-5 real
handwritten digits of scikit-learn upscaled to 12-48 px, glyphs split 80/20
between train and val), labelled per pixel. Labels are Cityscapes-style
single-channel PNG maps of class indices: 0 is the background, ``d + 1``
the region of digit ``d`` (11 classes): the pixels where the upscaled
glyph's intensity exceeds one half (its ink), grown by a disc a quarter
of the glyph's side wide so the strokes merge into one solid shape, the
way Cityscapes labels a whole object and not its outline. Ink alone is
1-2 px wide at 12 px glyphs and vanishes at the output stride of 8 a
segmentor predicts at; a benchmark FCN trained on ink labels predicted
the background everywhere.

Layout (what ``mmseg.datasets.BaseSegDataset`` reads)::

    OUT_DIR/img_dir/{train,val}/00000.png   BGR images
    OUT_DIR/ann_dir/{train,val}/00000.png   uint8 label maps

Usage::

    python tools/demo/digits_seg.py OUT_DIR [--train 2000] [--val 300]
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, Tuple

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from digits_coco import IMAGE_SIZE, _background, _overlaps  # noqa: E402

CLASSES = ('background', ) + tuple(str(d) for d in range(10))
PALETTE = [[0, 0, 0]] + [[int(c) for c in cv2.applyColorMap(
    np.uint8([[25 * d]]), cv2.COLORMAP_JET)[0, 0]] for d in range(10)]
INK_THRESHOLD = 0.5
# Bumped whenever the labelling changes, so cached data sets are rebuilt.
LABEL_VERSION = 'region'


def digit_region(alpha: np.ndarray) -> np.ndarray:
    """The solid shape of one glyph: its ink (``alpha > 0.5``) closed and
    grown by a disc a quarter of the glyph's side wide."""
    side = alpha.shape[0]
    width = max(3, side // 4) | 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    ink = (alpha > INK_THRESHOLD).astype(np.uint8)
    return cv2.dilate(cv2.morphologyEx(ink, cv2.MORPH_CLOSE, disc),
                      disc).astype(bool)


def render_seg_image(rng: np.random.Generator, glyphs: np.ndarray,
                     labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One BGR image and its label map (0 background, digit + 1 region)."""
    img = _background(rng)
    label_map = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    placed = []
    for _ in range(int(rng.integers(1, 6))):
        idx = int(rng.integers(len(glyphs)))
        side = int(rng.integers(12, 49))
        for _attempt in range(20):
            x, y = (int(v) for v in rng.integers(0, IMAGE_SIZE - side, 2))
            if not _overlaps((x, y, side, side), placed):
                break
        else:
            continue
        alpha = cv2.resize(glyphs[idx] / 16.0, (side, side),
                           interpolation=cv2.INTER_LINEAR).clip(0, 1)
        patch = img[y:y + side, x:x + side]
        mean = patch.mean(axis=(0, 1))
        color = np.where(mean > 127, rng.uniform(0, 60, 3),
                         rng.uniform(195, 255, 3))  # contrast with the patch
        img[y:y + side, x:x + side] = patch * (1 - alpha[..., None]) + \
            color * alpha[..., None]
        window = label_map[y:y + side, x:x + side]
        window[digit_region(alpha)] = int(labels[idx]) + 1
        placed.append((x, y, side, side))
    return img.clip(0, 255).astype(np.uint8), label_map


def write_split(out_dir: str, split: str, num_images: int,
                glyphs: np.ndarray, labels: np.ndarray,
                rng: np.random.Generator) -> None:
    """Write ``img_dir/split/*.png`` and ``ann_dir/split/*.png``."""
    img_dir = osp.join(out_dir, 'img_dir', split)
    ann_dir = osp.join(out_dir, 'ann_dir', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for image_id in range(num_images):
        img, label_map = render_seg_image(rng, glyphs, labels)
        cv2.imwrite(osp.join(img_dir, f'{image_id:05d}.png'), img)
        cv2.imwrite(osp.join(ann_dir, f'{image_id:05d}.png'), label_map)


def generate(out_dir: str, num_train: int = 2000, num_val: int = 300,
             seed: int = 0, glyph_set: str = 'digits') -> Dict[str, str]:
    """Generate both splits; returns their image folders.
    ``glyph_set='shapes'`` draws the scenes with the ten shapes of
    ``shapes.py`` instead of the digits (the same class ids)."""
    from shapes import load_glyphs
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be >= 1, got '
                         f'{num_train} and {num_val}.')
    digits = load_glyphs(glyph_set)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.images))
    cut = int(0.8 * len(order))
    splits = dict(train=(order[:cut], num_train), val=(order[cut:], num_val))
    for split, (idx, num) in splits.items():
        write_split(out_dir, split, num, digits.images[idx],
                    digits.target[idx], rng)
    return {split: osp.join(out_dir, 'img_dir', split) for split in splits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir')
    parser.add_argument('--train', type=int, default=2000)
    parser.add_argument('--val', type=int, default=300)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--glyphs', choices=('digits', 'shapes'),
                        default='digits')
    args = parser.parse_args()
    print(generate(args.out_dir, args.train, args.val, args.seed,
                   args.glyphs))


if __name__ == '__main__':
    main()
