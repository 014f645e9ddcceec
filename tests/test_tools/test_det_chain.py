"""train.py -> extract_student.py -> test.py on an unmodified mmdet config.

The distill config `_base_`s MMDetection's own RetinaNet-R18 config and only
points the data at tiny generated COCO data (10 classes, set on the command
line); the teacher is the user's RetinaNet-R18 project config trained for
one epoch by the same tools/train.py, so its checkpoint is a real MMEngine
checkpoint (message hub and all).
"""
import os.path as osp
import re

import pytest
import torch
from chain import extract_and_test, run_python, run_tool, tool

DATA = '''
data_root = {data_root!r}
classes = tuple(str(d) for d in range(10))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs'),
]
def _loader(split):
    return dict(batch_size=2, num_workers=0, persistent_workers=False,
                dataset=dict(data_root=data_root, ann_file=split + '.json',
                             data_prefix=dict(img=split + '/'),
                             metainfo=dict(classes=classes),
                             pipeline=pipeline))
train_dataloader = _loader('train')
val_dataloader = _loader('val')
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + '/val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1))
del _loader
'''

# the user's own project config: mmdet's RetinaNet-R18 on their 10 classes
PLAIN = """_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
model = dict(bbox_head=dict(num_classes=10))
""" + DATA

DISTILL = '''_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='mmkd.Distiller',
    student={{{{_base_.model}}}},
    teacher=dict(config={teacher_config!r}, checkpoint={teacher!r}),
    distill=dict(fpn=dict(type='FeatureImitation', student='neck',
                          teacher='neck', mask=dict(type='FGFIMask'),
                          normalize='fgfi', loss_weight=0.01)),
    probe_size=(128, 128))
''' + DATA

# no ImageNet download here; an untrained detector scores below 0.05
PLAIN_OPTS = ['model.backbone.init_cfg=None', 'model.test_cfg.score_thr=0.0']
KD_OPTS = ['model.student.backbone.init_cfg=None',
           'model.student.test_cfg.score_thr=0.0',
           'model.student.bbox_head.num_classes=10']


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    from digits_coco import generate
    root = tmp_path_factory.mktemp('det')
    generate(str(root / 'data'), num_train=4, num_val=4, seed=0)
    plain = root / 'plain.py'
    plain.write_text(PLAIN.format(data_root=str(root / 'data')))
    # a teacher: one real epoch of the plain config through tools/train.py
    run_tool([tool('train.py'), str(plain), '--work-dir',
              str(root / 'teacher'), '--cfg-options', *PLAIN_OPTS],
             cwd=str(root))
    distill = root / 'distill.py'
    distill.write_text(DISTILL.format(
        data_root=str(root / 'data'), teacher_config=str(plain),
        teacher=str(root / 'teacher' / 'epoch_1.pth')))
    proc = run_tool([tool('train.py'), str(distill), '--work-dir',
                     str(root / 'kd'), '--cfg-options',
                     *KD_OPTS], cwd=str(root))
    return dict(root=root, plain=plain, distill=distill,
                ckpt=root / 'kd' / 'epoch_1.pth', train_log=proc.stdout +
                proc.stderr)


def test_distill_training_logs_both_losses(workspace):
    log = workspace['train_log']
    # values logged, not only the names in the config dump
    assert re.search(r'loss_distill_fpn: \d', log)
    assert re.search(r'loss_cls: \d', log)
    assert re.search(r'coco/bbox_mAP: -?\d', log)  # val ran on the student


def test_checkpoint_holds_student_and_adaptors_not_teacher(workspace):
    import mmkd  # noqa: F401  (allow-lists MMEngine's types)
    ckpt = torch.load(workspace['ckpt'], weights_only=True)
    keys = ckpt['state_dict'].keys()
    assert any(k.startswith('student.backbone.') for k in keys)
    assert any(k.startswith('distill_terms.fpn.adaptors.') for k in keys)
    assert not any(k.startswith('teacher') for k in keys)


def test_extract_then_plain_mmdet_test(workspace):
    root = workspace['root']
    out = root / 'student.pth'
    assert re.search(r'coco/bbox_mAP: -?\d',
                     extract_and_test(workspace, out.name, PLAIN_OPTS))
    # refuses to overwrite without --force, and leaves the file intact
    size = out.stat().st_size
    again = run_tool([tool('extract_student.py'), str(workspace['ckpt']),
                      str(out)], cwd=str(root), check=False)
    assert again.returncode != 0 and '--force' in again.stderr
    assert out.stat().st_size == size


def test_extracted_student_loads_without_mmkd_and_predicts_the_same(
        workspace):
    root = workspace['root']
    out = root / 'student_same.pth'
    run_tool([tool('extract_student.py'), str(workspace['ckpt']), str(out)],
             cwd=str(root))
    plain_code = f'''
import sys, torch
from mmdet.apis import init_detector
torch.manual_seed(0)
x = torch.rand(1, 3, 128, 128) * 255
model = init_detector({str(workspace['plain'])!r}, {str(out)!r},
                      device='cpu')
assert 'mmkd' not in sys.modules
assert model.dataset_meta['classes'][0] == '0'
with torch.no_grad():
    cls, reg = model(model.data_preprocessor(
        dict(inputs=[x[0].byte()]), False)['inputs'], mode='tensor')
torch.save(dict(cls=cls, reg=reg), {str(root / 'plain_out.pth')!r})
'''
    run_python(plain_code, str(root))
    distill_code = f'''
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint
import mmkd
torch.manual_seed(0)
x = torch.rand(1, 3, 128, 128) * 255
cfg = Config.fromfile({str(workspace['distill'])!r})
cfg.model.student.backbone.init_cfg = None  # as KD_OPTS
cfg.model.student.bbox_head.num_classes = 10
init_default_scope('mmdet')
model = MODELS.build(cfg.model).eval()
load_checkpoint(model, {str(workspace['ckpt'])!r}, map_location='cpu')
with torch.no_grad():
    cls, reg = model(model.data_preprocessor(
        dict(inputs=[x[0].byte()]), False)['inputs'], mode='tensor')
torch.save(dict(cls=cls, reg=reg), {str(root / 'kd_out.pth')!r})
'''
    run_python(distill_code, str(root))
    plain = torch.load(root / 'plain_out.pth')
    kd = torch.load(root / 'kd_out.pth')
    for a, b in zip(plain['cls'] + plain['reg'], kd['cls'] + kd['reg']):
        assert torch.equal(a, b)


def test_resume_from_a_distiller_checkpoint(workspace):
    root = workspace['root']
    proc = run_tool([tool('train.py'), str(workspace['distill']),
                     '--work-dir', str(root / 'kd'), '--resume',
                     str(workspace['ckpt']), '--cfg-options', *KD_OPTS,
                     'train_cfg.max_epochs=2'], cwd=str(root))
    log = proc.stdout + proc.stderr
    assert re.search(r'resumed epoch: 1, iter: [1-9]', log)
    assert osp.isfile(root / 'kd' / 'epoch_2.pth')


def test_missing_teacher_checkpoint_fails_before_training(workspace):
    root = workspace['root']
    proc = run_tool([tool('train.py'), str(workspace['distill']),
                     '--work-dir', str(root / 'bad'), '--cfg-options',
                     *KD_OPTS,
                     f'model.teacher.checkpoint={root}/missing.pth'],
                    cwd=str(root), check=False)
    assert proc.returncode != 0
    assert 'Teacher checkpoint not found' in proc.stderr
    assert not osp.exists(root / 'bad' / 'epoch_1.pth')


def test_extract_rejects_a_plain_checkpoint(workspace):
    root = workspace['root']
    proc = run_tool([tool('extract_student.py'),
                     str(root / 'teacher' / 'epoch_1.pth'),
                     str(root / 'x.pth')], cwd=str(root), check=False)
    assert proc.returncode != 0
    assert 'not an mmkd distiller checkpoint' in proc.stderr
    assert not osp.exists(root / 'x.pth')
