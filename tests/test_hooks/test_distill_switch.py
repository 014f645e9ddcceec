"""DistillSwitchHook switches distillation terms off from a given epoch or
iteration on, through a real MMEngine Runner training a tiny distiller."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import save_teacher, tiny_retinanet
from mmdet.structures import DetDataSample
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from mmkd.hooks import DistillSwitchHook
from mmkd.losses import FeatureImitation


def _data(count=4, size=64):
    torch.manual_seed(0)
    items = []
    for _ in range(count):
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[8., 8., 40., 48.]]),
            labels=torch.tensor([1]))
        items.append(dict(
            inputs=torch.randint(0, 255, (3, size, size), dtype=torch.uint8),
            data_samples=sample))
    return items


class _RecordDistillLosses(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.rows = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.rows.append({k: torch.as_tensor(v).item()
                          for k, v in outputs.items()
                          if k.startswith('loss_distill_')})


def _runner(tmp_path, hook, train_cfg):
    ckpt = save_teacher(tiny_retinanet(16, 32), str(tmp_path / 't.pth'),
                        'mmdet')
    model = dict(
        type='mmkd.Distiller',
        student=tiny_retinanet(),
        teacher=dict(config=dict(model=tiny_retinanet(16, 32)),
                     checkpoint=ckpt),
        distill=dict(
            fpn=dict(type='FeatureImitation', student='neck',
                     teacher='neck'),
            cwd=dict(type='ChannelWiseKD', student='neck', teacher='neck',
                     adaptor=dict(type='ConvAdaptor'))),
        probe_size=(64, 64))
    recorder = _RecordDistillLosses()
    runner = Runner(
        model=model, work_dir=str(tmp_path),
        train_dataloader=dict(dataset=_data(), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-4)),
        train_cfg=train_cfg,
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=[hook, recorder],
        experiment_name=f'switch_{id(recorder)}', default_scope='mmdet')
    return runner, recorder


def _assert_all_off_from(rows, first_off: int, total: int) -> None:
    """Every term's loss is 0 exactly from iteration ``first_off`` on."""
    assert len(rows) == total
    for i, row in enumerate(rows):
        for value in row.values():
            assert (value == 0.0) == (i >= first_off), (i, row)


def test_named_term_off_from_an_iteration(tmp_path, runner_state_restored):
    hook = dict(type='mmkd.DistillSwitchHook', stop_iter=2, terms=['fpn'])
    runner, recorder = _runner(tmp_path, hook,
                               dict(by_epoch=False, max_iters=4))
    runner.train()
    fpn = [row['loss_distill_fpn'] for row in recorder.rows]
    cwd = [row['loss_distill_cwd'] for row in recorder.rows]
    assert len(fpn) == 4
    assert all(v > 0 for v in fpn[:2]) and fpn[2:] == [0.0, 0.0]
    assert all(v > 0 for v in cwd)  # the other term keeps going
    terms = runner.model.distill_terms
    assert not terms.fpn.enabled and terms.cwd.enabled


def test_all_terms_off_from_an_epoch(tmp_path, runner_state_restored):
    # 4 images, batch 2: two iterations an epoch; off in the third epoch
    hook = dict(type='mmkd.DistillSwitchHook', stop_epoch=2)
    runner, recorder = _runner(tmp_path, hook,
                               dict(by_epoch=True, max_epochs=3))
    runner.train()
    _assert_all_off_from(recorder.rows, 4, total=6)


def test_unknown_term_fails_before_training(tmp_path, runner_state_restored):
    hook = dict(type='mmkd.DistillSwitchHook', stop_iter=1, terms=['fnp'])
    runner, recorder = _runner(tmp_path, hook,
                               dict(by_epoch=False, max_iters=2))
    with pytest.raises(KeyError, match=r"fnp.*\['fpn', 'cwd'\]"):
        runner.train()
    assert recorder.rows == []


def test_off_for_the_last_fraction_of_an_epoch_based_schedule(
        tmp_path, runner_state_restored):
    # 3 epochs of 2 iterations: 2/3 of 6 iterations -> off from the fifth
    hook = dict(type='mmkd.DistillSwitchHook', stop_fraction=2 / 3)
    runner, recorder = _runner(tmp_path, hook,
                               dict(by_epoch=True, max_epochs=3))
    runner.train()
    _assert_all_off_from(recorder.rows, 4, total=6)


@pytest.mark.parametrize('kwargs', [
    dict(), dict(stop_epoch=1, stop_iter=1),
    dict(stop_iter=1, stop_fraction=0.5)])
def test_needs_exactly_one_stop(kwargs):
    with pytest.raises(ValueError, match='exactly one'):
        DistillSwitchHook(**kwargs)


def test_negative_stop_is_refused():
    with pytest.raises(ValueError, match='stop_epoch'):
        DistillSwitchHook(stop_epoch=-1)
    with pytest.raises(ValueError, match='stop_fraction'):
        DistillSwitchHook(stop_fraction=1.5)


def test_switched_off_term_keeps_its_parameters_in_the_graph():
    """Like warm-up: multiplied by 0, so DDP still sees the adaptor used."""
    term = FeatureImitation('neck', 'neck')
    s = torch.randn(1, 2, 3, 3)
    term.setup([s], [torch.randn(1, 4, 3, 3)], student_model=None)
    term.enabled = False
    loss = term(s, torch.randn(1, 4, 3, 3), [], iteration=10)
    assert loss.item() == 0.0
    loss.backward()
    grad = term.adaptors[0].conv.conv.weight.grad
    assert grad is not None and not grad.any()


def test_ddp_without_unused_parameter_search(tmp_path, det_scope):
    """Two gloo ranks, find_unused_parameters=False: with FGD and MGD
    blocks and a switched-off term, every step reduces every parameter
    (a missing one would hang or fail) and the ranks stay in sync."""
    ckpt = save_teacher(tiny_retinanet(16, 32), str(tmp_path / 't.pth'),
                        'mmdet')
    worker = osp.join(osp.dirname(osp.abspath(__file__)),
                      'ddp_switch_worker.py')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_port', '29531', worker, ckpt, str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    ranks = [torch.load(tmp_path / f'rank{r}.pth') for r in (0, 1)]
    assert any(k.startswith('cwd.') for k in ranks[0]['terms'])
    for part in ('student', 'terms'):
        for key, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][key]), key
