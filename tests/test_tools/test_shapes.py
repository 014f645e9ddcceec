"""The second glyph set of the demo scenes (tools/demo/shapes.py) and the
benchmark's data sets drawn with it."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))

import accuracy  # noqa: E402
import shapes  # noqa: E402


def test_every_shape_class_has_its_glyphs_in_the_digits_value_range():
    glyphs = shapes.load_shapes(per_class=20)
    assert glyphs.images.shape == (200, shapes.CANVAS, shapes.CANVAS)
    assert glyphs.images.min() >= 0 and glyphs.images.max() <= 16
    assert np.bincount(glyphs.target).tolist() == [20] * 10
    # every glyph has ink, and none fills its canvas
    ink = (glyphs.images > 8).reshape(len(glyphs.images), -1).mean(1)
    assert ink.min() > 0.05 and ink.max() < 0.9
    # an outline is hollow where its filled twin has ink: at the centre
    # of mass of the glyph's ink
    def ink_at_centre(image):
        rows, cols = np.nonzero(image > 8)
        return image[int(round(rows.mean())), int(round(cols.mean()))] > 8

    for filled, outline in (('disc', 'ring'), ('square', 'square outline'),
                            ('triangle', 'triangle outline')):
        full = glyphs.images[glyphs.target == shapes.SHAPES.index(filled)]
        hollow = glyphs.images[glyphs.target ==
                               shapes.SHAPES.index(outline)]
        assert all(ink_at_centre(g) for g in full), filled
        assert not any(ink_at_centre(g) for g in hollow), outline


def test_shapes_are_drawn_at_random_but_the_same_for_a_seed():
    a, b = shapes.load_shapes(0, 5), shapes.load_shapes(0, 5)
    np.testing.assert_array_equal(a.images, b.images)
    c = shapes.load_shapes(1, 5)
    assert not np.array_equal(a.images, c.images)
    # two glyphs of one class differ (rotation, scale, jitter)
    disc = a.images[a.target == 0]
    assert not np.array_equal(disc[0], disc[1])


def test_an_unknown_glyph_set_names_the_known_ones():
    with pytest.raises(ValueError, match="'digits' or 'shapes'"):
        shapes.load_glyphs('letters')


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_the_benchmark_draws_its_second_data_set_apart_from_the_first(
        task, tmp_path):
    digits = accuracy.ensure_data(task, str(tmp_path), 3, 2)
    drawn = accuracy.ensure_data(task, str(tmp_path), 3, 2, 'shapes')
    assert drawn != digits and 'shapes' in osp.basename(drawn)
    assert osp.isfile(osp.join(drawn, 'DONE'))
    if task == 'det':
        coco = json.load(open(osp.join(drawn, 'train.json')))
        assert len(coco['images']) == 3 and coco['annotations']
        # the category ids and names the benchmark configs read
        assert [c['name'] for c in coco['categories']] == \
            [str(d) for d in range(10)]
        first = json.load(open(osp.join(digits, 'train.json')))
        assert coco['annotations'] != first['annotations']
    else:
        import cv2
        label = cv2.imread(osp.join(drawn, 'ann_dir', 'train', '00000.png'),
                           cv2.IMREAD_UNCHANGED)
        assert label.max() <= 10 and (label > 0).any()
