"""FiniteCheckpointHook refuses to save NaN/inf weights, through a real
MMEngine Runner (the save is what the hook guards)."""
import math
import os

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmkd.hooks import FiniteCheckpointHook
from mmkd.hooks.finite_checkpoint import nonfinite_tensors


class _Tiny(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return out


class _Poison(FiniteCheckpointHook.__mro__[1]):  # an mmengine Hook
    """Turns the weights to NaN after the given iteration (after its
    checkpoint, which has a higher priority)."""
    priority = 'LOWEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at:
            with torch.no_grad():
                runner.model.linear.weight.fill_(math.nan)


def _runner(work_dir, poison_at):
    data = [dict(inputs=torch.ones(2)) for _ in range(8)]
    return Runner(
        model=_Tiny(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1, by_epoch=False)),
        custom_hooks=[dict(type='mmkd.FiniteCheckpointHook'),
                      _Poison(poison_at)],
        experiment_name=f'finite_{poison_at}', default_scope='mmkd')


def test_nonfinite_tensors_names_keys():
    state = dict(a=torch.ones(2), b=torch.tensor([1.0, math.inf]),
                 c=torch.tensor([1, 2]), d='meta')
    assert nonfinite_tensors(state) == ['b']


def test_runner_stops_before_saving_nan_weights(tmp_path,
                                                runner_state_restored):
    runner = _runner(tmp_path, poison_at=3)
    with pytest.raises(FloatingPointError, match='not saving a checkpoint'):
        runner.train()
    saved = sorted(f for f in os.listdir(tmp_path) if f.endswith('.pth'))
    # poisoned after the 3rd save: the 4th is refused, the 3 before kept
    assert saved == ['iter_1.pth', 'iter_2.pth', 'iter_3.pth']
    for name in saved:
        state = torch.load(tmp_path / name, weights_only=False)
        assert not nonfinite_tensors(state['state_dict'])
