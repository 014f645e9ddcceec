"""Generate a small COCO-format detection set of handwritten digits.

Each 128×128 image has a colour-gradient background with Gaussian noise
and random lines/rectangles as clutter, and 1-5 real handwritten digits
(the 1,797 8×8 glyphs scikit-learn ships) upscaled to 12-48 px at random
non-overlapping positions. A box is the tight box of the glyph's ink; the
category is the digit. The glyphs are split 80/20 between train and val, so
no glyph instance appears in both.

Usage::

    python tools/demo/digits_coco.py OUT_DIR [--train 2000] [--val 300]
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Tuple

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

CLASSES = tuple(str(d) for d in range(10))
IMAGE_SIZE = 128


def _background(rng: np.random.Generator) -> np.ndarray:
    size = IMAGE_SIZE
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    img += rng.normal(0, 8, img.shape)
    for _ in range(rng.integers(2, 7)):  # clutter
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        if rng.random() < 0.5:
            cv2.line(img, p1, p2, color, int(rng.integers(1, 3)))
        else:
            cv2.rectangle(img, p1, p2, color, 1)
    return img


def _overlaps(box: Tuple[int, int, int, int],
              boxes: List[Tuple[int, int, int, int]], margin: int = 2) -> bool:
    x, y, w, h = box
    return any(x < bx + bw + margin and bx < x + w + margin
               and y < by + bh + margin and by < y + h + margin
               for bx, by, bw, bh in boxes)


def render_image(rng: np.random.Generator, glyphs: np.ndarray,
                 labels: np.ndarray) -> Tuple[np.ndarray, List[Dict]]:
    """One image and its annotations (``bbox`` in COCO xywh)."""
    img = _background(rng)
    placed, anns = [], []
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
        ink_rows = np.where(alpha.max(axis=1) > 0.25)[0]
        ink_cols = np.where(alpha.max(axis=0) > 0.25)[0]
        if len(ink_rows) == 0:
            continue
        patch = img[y:y + side, x:x + side]
        mean = patch.mean(axis=(0, 1))
        color = np.where(mean > 127, rng.uniform(0, 60, 3),
                         rng.uniform(195, 255, 3))  # contrast with the patch
        img[y:y + side, x:x + side] = patch * (1 - alpha[..., None]) + \
            color * alpha[..., None]
        x1, y1 = x + int(ink_cols[0]), y + int(ink_rows[0])
        x2, y2 = x + int(ink_cols[-1]) + 1, y + int(ink_rows[-1]) + 1
        placed.append((x, y, side, side))
        anns.append(dict(bbox=[x1, y1, x2 - x1, y2 - y1],
                         category_id=int(labels[idx])))
    return img.clip(0, 255).astype(np.uint8), anns


def write_split(out_dir: str, split: str, num_images: int,
                glyphs: np.ndarray, labels: np.ndarray,
                rng: np.random.Generator) -> str:
    """Write ``out_dir/split/*.png`` and ``out_dir/split.json``."""
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for image_id in range(num_images):
        img, anns = render_image(rng, glyphs, labels)
        file_name = f'{image_id:05d}.png'
        cv2.imwrite(osp.join(out_dir, split, file_name), img)
        images.append(dict(id=image_id, file_name=file_name,
                           width=IMAGE_SIZE, height=IMAGE_SIZE))
        for ann in anns:
            w, h = ann['bbox'][2:]
            annotations.append(dict(ann, id=len(annotations) + 1,
                                    image_id=image_id, area=w * h,
                                    iscrowd=0))
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=i, name=name)
                            for i, name in enumerate(CLASSES)])
    ann_file = osp.join(out_dir, f'{split}.json')
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    return ann_file


def generate(out_dir: str, num_train: int = 2000, num_val: int = 300,
             seed: int = 0, glyph_set: str = 'digits') -> Dict[str, str]:
    """Generate both splits; returns their annotation files.
    ``glyph_set='shapes'`` draws the scenes with the ten shapes of
    ``shapes.py`` instead of the digits (the same category ids)."""
    from shapes import load_glyphs
    digits = load_glyphs(glyph_set)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.images))
    cut = int(0.8 * len(order))
    train_idx, val_idx = order[:cut], order[cut:]
    return dict(
        train=write_split(out_dir, 'train', num_train,
                          digits.images[train_idx], digits.target[train_idx],
                          rng),
        val=write_split(out_dir, 'val', num_val, digits.images[val_idx],
                        digits.target[val_idx], rng))


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
