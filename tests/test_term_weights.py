"""mmkd.term_weights: the locations each term weighs in one loss step, as
the term's own loss weighs them."""
import pytest
import torch
from conftest import save_teacher
from tiny_heads import H, W, det_batch, tiny_gfl

from mmkd import Distiller
from mmkd.term_weights import term_weight_maps

pytestmark = pytest.mark.usefixtures('no_leftover_scope')

NECK = dict(student='neck', teacher='neck')


@pytest.fixture
def distiller(tmp_path, det_scope):
    ckpt = save_teacher(tiny_gfl(), str(tmp_path / 'teacher.pth'), 'mmdet')
    return Distiller(
        student=tiny_gfl(),
        teacher=dict(config=dict(default_scope='mmdet', model=tiny_gfl()),
                     checkpoint=ckpt),
        distill=dict(
            plain=dict(type='FeatureImitation', **NECK),
            box=dict(type='FeatureImitation', mask=dict(type='GtBoxMask'),
                     **NECK),
            fgfi=dict(type='FeatureImitation', mask=dict(type='FGFIMask'),
                      **NECK),
            fgd=dict(type='FocalGlobalKD', **NECK),
            ld=dict(type='LocalizationDistillation', region='main'),
            vlr=dict(type='LocalizationDistillation', region='valuable')),
        probe_size=(H, W))


def test_terms_that_weigh_locations_get_one_map_a_level(distiller):
    inputs, samples = det_batch()
    maps = term_weight_maps(distiller.eval(), inputs, samples)
    # the plain imitation weighs every location alike: no map
    assert list(maps) == ['box', 'fgfi', 'fgd', 'ld', 'vlr']
    strides = (8, 16, 32)
    for name, levels in maps.items():
        assert [tuple(m.shape) for m in levels] == [
            (-(-H // s), -(-W // s)) for s in strides], name


def test_the_box_mask_covers_the_cells_of_the_first_images_boxes(
        distiller):
    inputs, samples = det_batch()
    level0 = term_weight_maps(distiller.eval(), inputs, samples)['box'][0]
    # boxes [4, 6, 44, 50] and [40, 10, 90, 40] on the stride-8 grid:
    # columns 0..5 and 5..11, rows 0..6 and 1..4
    expected = torch.zeros(8, 12)
    expected[0:7, 0:6] = 1
    expected[1:5, 5:12] = 1
    assert torch.equal(level0, expected)


def test_maps_are_the_weights_the_terms_compute_with(distiller):
    inputs, samples = det_batch()
    maps = term_weight_maps(distiller.eval(), inputs, samples)
    # FGD's foreground: 1 / (cells of the box) where one box covers a
    # cell, so the second image's single box sums to 1 a level; the
    # first image's two boxes overlap and sum to less than 2
    fgd = maps['fgd']
    assert all(0 < float(m.sum()) < 2 for m in fgd)
    assert float(fgd[0].max()) == pytest.approx(1 / (4 * 7))
    # LD's main region is the student's positives: ATSS keeps priors
    # whose centres are inside a box, so every marked cell's centre is
    ld = maps['ld'][0]
    rows, cols = torch.nonzero(ld, as_tuple=True)
    assert len(rows) > 0
    cx, cy = (cols.float() + 0.5) * 8, (rows.float() + 0.5) * 8
    boxes = samples[0].gt_instances.bboxes
    inside = ((cx[:, None] > boxes[:, 0]) & (cx[:, None] < boxes[:, 2]) &
              (cy[:, None] > boxes[:, 1]) & (cy[:, None] < boxes[:, 3]))
    assert bool(inside.any(1).all())
    # the valuable localization region excludes the positives
    assert all(not bool((m.bool() & v.bool()).any())
               for m, v in zip(maps['ld'], maps['vlr']))
    assert any(float(v.sum()) > 0 for v in maps['vlr'])


def test_no_hook_is_left_behind(distiller):
    inputs, samples = det_batch()
    term_weight_maps(distiller.eval(), inputs, samples)
    assert all(not term._forward_hooks
               for term in distiller.distill_terms.values())
