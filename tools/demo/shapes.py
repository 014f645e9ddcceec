"""Glyphs of ten drawn shapes: the second glyph set of the demo scenes.

The digits benchmark tunes its configs on scenes of handwritten digits
(``digits_coco.py``, ``digits_seg.py``). To show that what was tuned there
holds elsewhere, the same scenes can be drawn with these glyphs instead:
ten shape classes, each instance drawn at random (rotation, scale, aspect,
stroke width, vertex jitter) on a 32×32 canvas, anti-aliased, with
intensities in ``[0, 16]`` like scikit-learn's 8×8 digits, so that the
scene renderers take them unchanged. Classes (the category ids, whose names
stay ``'0'``-``'9'`` so that every benchmark config reads both sets):

====  ==================  ====  ==================
id    shape               id    shape
====  ==================  ====  ==================
0     disc                5     triangle outline
1     ring                6     plus
2     square              7     five-point star
3     square outline      8     crescent
4     triangle            9     L
====  ==================  ====  ==================

The pairs (disc, ring), (square, square outline) and (triangle, triangle
outline) differ only by their inside, the star and the plus by their arms:
at 12 px a student has to look as closely as it does at the digits.
"""
from types import SimpleNamespace
from typing import Callable, Dict, List

import cv2
import numpy as np

CANVAS = 32
SHAPES = ('disc', 'ring', 'square', 'square outline', 'triangle',
          'triangle outline', 'plus', 'star', 'crescent', 'L')
GLYPHS_PER_CLASS = 180


def _polygon(rng: np.random.Generator, unit: np.ndarray) -> np.ndarray:
    """``unit`` (points around the origin, radius about 1) rotated,
    stretched and jittered at random, in canvas pixels."""
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)],
                         [np.sin(angle), np.cos(angle)]])
    aspect = rng.uniform(0.8, 1.25)
    scale = rng.uniform(0.7, 0.95) * CANVAS / 2
    points = unit @ rotation.T * np.array([aspect, 1 / aspect]) * scale
    points += rng.normal(0, 0.6, points.shape)
    return points + CANVAS / 2


def _regular(vertices: int, start: float = np.pi / 2) -> np.ndarray:
    angles = start + 2 * np.pi * np.arange(vertices) / vertices
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _draw(points: np.ndarray, filled: bool, thickness: int) -> np.ndarray:
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    # 4 fractional bits: sub-pixel vertices, anti-aliased edges
    pts = [np.round(points * 16).astype(np.int32)]
    if filled:
        cv2.fillPoly(canvas, pts, 1.0, cv2.LINE_AA, shift=4)
    else:
        cv2.polylines(canvas, pts, True, 1.0, thickness, cv2.LINE_AA,
                      shift=4)
    return canvas


def _stroke(rng: np.random.Generator) -> int:
    return int(rng.integers(2, 4))


def _disc(rng, filled: bool) -> np.ndarray:
    return _draw(_polygon(rng, _regular(48)), filled, _stroke(rng))


def _square(rng, filled: bool) -> np.ndarray:
    return _draw(_polygon(rng, _regular(4, np.pi / 4)), filled,
                 _stroke(rng))


def _triangle(rng, filled: bool) -> np.ndarray:
    return _draw(_polygon(rng, _regular(3)), filled, _stroke(rng))


def _plus(rng) -> np.ndarray:
    arm = rng.uniform(0.2, 0.35)
    unit = np.array([[arm, 1], [-arm, 1], [-arm, arm], [-1, arm], [-1, -arm],
                     [-arm, -arm], [-arm, -1], [arm, -1], [arm, -arm],
                     [1, -arm], [1, arm], [arm, arm]])
    return _draw(_polygon(rng, unit), True, 1)


def _star(rng) -> np.ndarray:
    outer, inner = _regular(5), _regular(5, np.pi / 2 + np.pi / 5)
    unit = np.empty((10, 2))
    unit[0::2], unit[1::2] = outer, inner * rng.uniform(0.35, 0.5)
    return _draw(_polygon(rng, unit), True, 1)


def _crescent(rng) -> np.ndarray:
    disc = _draw(_polygon(rng, _regular(48)), True, 1)
    shift = rng.uniform(0.3, 0.5) * CANVAS
    angle = rng.uniform(0, 2 * np.pi)
    move = np.float32([[1, 0, shift * np.cos(angle)],
                       [0, 1, shift * np.sin(angle)]])
    bite = cv2.warpAffine(disc, move, (CANVAS, CANVAS))
    return np.clip(disc - bite, 0, 1)


def _l_shape(rng) -> np.ndarray:
    bar = rng.uniform(0.3, 0.5)
    unit = np.array([[-1, -1], [-1 + bar, -1], [-1 + bar, 1 - bar],
                     [1, 1 - bar], [1, 1], [-1, 1]])
    return _draw(_polygon(rng, unit), True, 1)


DRAWERS: Dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    'disc': lambda rng: _disc(rng, True),
    'ring': lambda rng: _disc(rng, False),
    'square': lambda rng: _square(rng, True),
    'square outline': lambda rng: _square(rng, False),
    'triangle': lambda rng: _triangle(rng, True),
    'triangle outline': lambda rng: _triangle(rng, False),
    'plus': _plus,
    'star': _star,
    'crescent': _crescent,
    'L': _l_shape,
}


def load_shapes(seed: int = 0,
                per_class: int = GLYPHS_PER_CLASS) -> SimpleNamespace:
    """``per_class`` random glyphs of each shape, shuffled, as
    scikit-learn's ``load_digits()`` gives its digits: ``images`` (N, 32,
    32) float intensities in [0, 16] and ``target`` (N,) class ids."""
    rng = np.random.default_rng(seed)
    images: List[np.ndarray] = []
    target: List[int] = []
    for label, name in enumerate(SHAPES):
        for _ in range(per_class):
            images.append(DRAWERS[name](rng) * 16)
            target.append(label)
    order = rng.permutation(len(images))
    return SimpleNamespace(images=np.stack(images)[order],
                           target=np.array(target)[order])


def load_glyphs(glyph_set: str) -> SimpleNamespace:
    """The glyphs a scene generator draws: ``'digits'`` (scikit-learn's
    1,797 handwritten digits) or ``'shapes'`` (:func:`load_shapes`)."""
    if glyph_set == 'digits':
        from sklearn.datasets import load_digits
        return load_digits()
    if glyph_set == 'shapes':
        return load_shapes()
    raise ValueError(f"glyph_set must be 'digits' or 'shapes', got "
                     f'{glyph_set!r}.')
