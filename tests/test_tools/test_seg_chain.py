"""train.py -> extract_student.py -> test.py on an unmodified mmseg config.

The distill config `_base_`s MMSegmentation's own PSPNet-R18 Cityscapes
config; only the data (tiny generated Cityscapes-format scenes, 64×128)
and the crop size change. The teacher is the same plain config trained for
two iterations by tools/train.py.
"""
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from chain import extract_and_test, run_python, run_tool, tool

DATA = '''
data_root = {data_root!r}
crop_size = (64, 128)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
def _loader(split, sampler):
    return dict(batch_size=2, num_workers=0, persistent_workers=False,
                sampler=dict(type=sampler, shuffle=split == 'train'),
                dataset=dict(data_root=data_root,
                             data_prefix=dict(img_path='leftImg8bit/' + split,
                                              seg_map_path='gtFine/' + split),
                             pipeline=pipeline))
train_dataloader = _loader('train', 'InfiniteSampler')
val_dataloader = _loader('val', 'DefaultSampler')
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2))
del _loader
'''

BASE = "_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'"
PLAIN = BASE + '\n' + DATA

DISTILL = BASE + '''
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{{{_base_.model}}}},
    teacher=dict(
        config='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint={teacher!r}),
    distill=dict(
        logits=dict(type='PixelwiseKD', student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg', loss_weight=10.0),
        bottleneck=dict(type='FeatureImitation',
                        student='decode_head.bottleneck',
                        teacher='decode_head.bottleneck', loss_weight=0.5)),
    probe_size=(64, 128))
''' + DATA

PLAIN_OPTS = ['model.pretrained=None', 'model.data_preprocessor.size=(64,128)']
KD_OPTS = ['model.student.pretrained=None',
           'model.student.data_preprocessor.size=(64,128)']


def make_cityscapes(root: str, split: str, num: int, rng) -> None:
    """Cityscapes-format scenes: coloured rectangles labelled 0..18."""
    img_dir = osp.join(root, 'leftImg8bit', split, 'town')
    ann_dir = osp.join(root, 'gtFine', split, 'town')
    for d in (img_dir, ann_dir):
        import os
        os.makedirs(d, exist_ok=True)
    for i in range(num):
        img = rng.integers(0, 40, (64, 128, 3), dtype=np.uint8)
        label = np.zeros((64, 128), np.uint8)
        for _ in range(4):
            cls = int(rng.integers(0, 19))
            y, x = int(rng.integers(0, 48)), int(rng.integers(0, 96))
            label[y:y + 16, x:x + 32] = cls
            img[y:y + 16, x:x + 32] = 10 * cls + 40
        name = f'town_{i:06d}_000019'
        cv2.imwrite(osp.join(img_dir, f'{name}_leftImg8bit.png'), img)
        cv2.imwrite(osp.join(ann_dir, f'{name}_gtFine_labelTrainIds.png'),
                    label)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('seg')
    rng = np.random.default_rng(0)
    make_cityscapes(str(root / 'data'), 'train', 4, rng)
    make_cityscapes(str(root / 'data'), 'val', 2, rng)
    plain = root / 'plain.py'
    plain.write_text(PLAIN.format(data_root=str(root / 'data')))
    run_tool([tool('train.py'), str(plain), '--work-dir',
              str(root / 'teacher'), '--cfg-options', *PLAIN_OPTS],
             cwd=str(root))
    distill = root / 'distill.py'
    distill.write_text(DISTILL.format(
        data_root=str(root / 'data'),
        teacher=str(root / 'teacher' / 'iter_2.pth')))
    proc = run_tool([tool('train.py'), str(distill), '--work-dir',
                     str(root / 'kd'), '--cfg-options', *KD_OPTS],
                    cwd=str(root))
    return dict(root=root, plain=plain, distill=distill,
                ckpt=root / 'kd' / 'iter_2.pth',
                train_log=proc.stdout + proc.stderr)


def test_distill_training_logs_both_terms_and_miou(workspace):
    log = workspace['train_log']
    # values logged, not only the names in the config dump
    assert re.search(r'loss_distill_logits: \d', log)
    assert re.search(r'loss_distill_bottleneck: \d', log)
    assert re.search(r'mIoU: \d', log)


def test_extract_then_plain_mmseg_test(workspace):
    root = workspace['root']
    out = root / 'student.pth'
    assert re.search(r'mIoU: \d',
                     extract_and_test(workspace, out.name, PLAIN_OPTS))
    code = f'''
import sys, torch
from mmseg.apis import init_model
model = init_model({str(workspace['plain'])!r}, {str(out)!r}, device='cpu',
                   cfg_options=dict(model=dict(pretrained=None)))
assert 'mmkd' not in sys.modules
x = torch.rand(1, 3, 64, 128)
with torch.no_grad():
    print(tuple(model(x, mode='tensor').shape))
'''
    assert '(1, 19, 8, 16)' in run_python(code, str(root))
    weights = torch.load(out, weights_only=True)['state_dict']  # plain
    import mmkd  # noqa: F401  (allow-lists MMEngine's types)
    kd = torch.load(workspace['ckpt'], weights_only=True)['state_dict']
    for key, value in weights.items():
        assert torch.equal(value, kd['student.' + key])
