"""PackExtraInputs: a second view or modality packed beside the image."""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmkd.transforms import PackExtraInputs


def _results(h=8, w=6):
    rng = np.random.RandomState(0)
    return dict(img=rng.randint(0, 255, (h, w, 3)).astype(np.uint8),
                img_shape=(h, w), ori_shape=(h, w), img_id=0,
                img_path='x.png', scale_factor=(1.0, 1.0), flip=False,
                flip_direction=None,
                gt_bboxes=np.zeros((0, 4), np.float32),
                gt_bboxes_labels=np.zeros((0, ), np.int64),
                gt_ignore_flags=np.zeros((0, ), bool),
                depth=rng.rand(h, w).astype(np.float32),
                normals=rng.rand(h, w, 3).astype(np.float32))


def test_packs_extra_images_as_chw_beside_the_inputs(det_scope):
    pack = PackExtraInputs(keys=('depth', 'normals'))
    results = _results()
    packed = pack(dict(results))
    assert packed['inputs'].shape == (3, 8, 6)
    assert packed['depth'].shape == (1, 8, 6)
    assert torch.equal(packed['depth'][0], torch.from_numpy(
        results['depth']))
    assert torch.equal(packed['normals'].permute(1, 2, 0),
                       torch.from_numpy(results['normals']))
    # the default collate keeps the key as a list beside inputs
    batch = pseudo_collate([packed, pack(dict(results))])
    assert len(batch['depth']) == 2 and batch['depth'][0].shape == (1, 8, 6)


def test_a_missing_key_names_what_the_sample_has(det_scope):
    results = _results()
    del results['depth']
    with pytest.raises(KeyError, match="no \\['depth'\\]"):
        PackExtraInputs(keys='depth')(results)


def test_keys_that_clash_with_the_batch_are_refused(det_scope):
    with pytest.raises(ValueError, match='other than'):
        PackExtraInputs(keys=('inputs', ))


def test_builds_from_a_pipeline_config(det_scope):
    from mmengine.registry import TRANSFORMS
    pack = TRANSFORMS.build(dict(type='mmkd.PackExtraInputs',
                                 keys=('depth', ),
                                 pack=dict(type='PackDetInputs')))
    assert isinstance(pack, PackExtraInputs)
    assert type(pack.pack).__name__ == 'PackDetInputs'
