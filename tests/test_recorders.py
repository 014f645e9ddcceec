import pytest
import torch
import torch.nn as nn

from mmkd.recorders import ModelRecorder, ReadSpec, StopForward


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.shared = nn.Conv2d(4, 4, 1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        x = self.stem(x)
        levels = [self.shared(x), self.shared(x[..., ::2, ::2])]
        return [self.head(level) for level in levels]


def test_records_output_and_input_by_path():
    net = _Net()
    rec = ModelRecorder(net, [ReadSpec('stem'),
                              ReadSpec('stem', 'input')], 'student')
    rec.active = True
    x = torch.randn(1, 3, 4, 4)
    net(x)
    assert torch.equal(rec.get(ReadSpec('stem', 'input')), x)
    assert torch.equal(rec.get(ReadSpec('stem')), net.stem(x))


def test_module_called_per_level_gives_a_tuple():
    net = _Net()
    rec = ModelRecorder(net, [ReadSpec('shared')], 'student')
    rec.active = True
    net(torch.randn(1, 3, 4, 4))
    levels = rec.get(ReadSpec('shared'))
    assert isinstance(levels, tuple) and len(levels) == 2
    assert levels[1].shape[-1] == 2


def test_inactive_recorder_keeps_nothing_and_clear_empties():
    net = _Net()
    rec = ModelRecorder(net, [ReadSpec('stem')], 'student')
    net(torch.randn(1, 3, 4, 4))
    with pytest.raises(RuntimeError, match='not executed'):
        rec.get(ReadSpec('stem'))
    rec.active = True
    net(torch.randn(1, 3, 4, 4))
    rec.clear()
    assert rec.call_counts() == {ReadSpec('stem'): 0}


def test_unknown_path_suggests_nearest():
    with pytest.raises(KeyError, match=r"teacher has no module 'stme'.*"
                       r"'stem'"):
        ModelRecorder(_Net(), [ReadSpec('stme')], 'teacher')


def test_stop_forward_once_complete():
    net = _Net()
    calls = []
    net.head.register_forward_hook(lambda *a: calls.append(1))
    rec = ModelRecorder(net, [ReadSpec('shared')], 'teacher')
    rec.expected_calls = {ReadSpec('shared'): 2}
    rec.active = rec.stop_when_complete = True
    with pytest.raises(StopForward):
        net(torch.randn(1, 3, 4, 4))
    assert calls == []  # the head never ran
    assert len(rec.get(ReadSpec('shared'))) == 2


def test_read_spec_parsing():
    assert ReadSpec.parse('neck') == ReadSpec('neck', 'output')
    assert ReadSpec.parse(dict(path='neck', record='input')) == \
        ReadSpec('neck', 'input')
    with pytest.raises(TypeError, match='module reference'):
        ReadSpec.parse(dict(module='neck'))
    with pytest.raises(ValueError, match='record must be'):
        ModelRecorder(_Net(), [ReadSpec('stem', 'grad')], 'student')
