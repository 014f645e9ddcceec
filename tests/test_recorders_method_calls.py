"""Method-call records: ``record='calls'`` on one module instance."""
import copy

import pytest
import torch
import torch.nn as nn

from mmkd.recorders import (MethodCalls, ModelRecorder, ReadSpec,
                            RecordedMethod, StopForward, recorded_tensors)


class _Head(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Linear(2, 2)

    def forward(self, x):
        return self.conv(x), x.sum()

    def targets(self, x, scale=1.0):
        return x * scale


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.head = _Head()
        self.other = _Head()

    def forward(self, x):
        out, _ = self.head(x)
        return self.head.targets(out, scale=2.0)


SPEC = ReadSpec('head', 'calls', ('forward', 'targets'))


def test_records_arguments_and_results_of_one_instance():
    net = _Net()
    rec = ModelRecorder(net, [SPEC], 'student')
    rec.active = True
    x = torch.randn(3, 2)
    y = net(x)
    net.other(x)  # another instance of the class: not recorded
    calls = rec.get(SPEC)
    assert isinstance(calls, MethodCalls) and set(calls) == {
        'forward', 'targets'}
    forward = calls.last('forward')
    assert forward.owner is net.head and forward.args[0] is x
    assert torch.equal(forward.result[0], net.head.conv(x))
    targets = calls.last('targets')
    assert targets.kwargs == dict(scale=2.0) and targets.result is y
    assert len(calls['forward']) == 1
    # records tensors of the results (finite checks)
    assert len(recorded_tensors(calls)) == 3


def test_inactive_recorder_records_nothing_and_remove_restores():
    net = _Net()
    rec = ModelRecorder(net, [SPEC], 'student')
    net(torch.randn(1, 2))
    assert rec.call_counts() == {SPEC: 0}
    assert isinstance(net.head.__dict__['targets'], RecordedMethod)
    rec.remove()
    assert 'targets' not in net.head.__dict__
    assert 'forward' not in net.head.__dict__
    assert net.head.targets.__func__ is _Head.targets


def test_missing_method_and_bad_specs_are_errors():
    with pytest.raises(AttributeError, match="no method 'get_targets'"):
        ModelRecorder(_Net(), [ReadSpec('head', 'calls', ('get_targets', ))],
                      'student')
    with pytest.raises(ValueError, match='methods'):
        ReadSpec('head', 'calls')
    with pytest.raises(ValueError, match='methods'):
        ReadSpec('head', 'output', ('forward', ))
    assert ReadSpec.parse(dict(path='head', record='calls',
                               methods=['forward'])).methods == ('forward', )
    with pytest.raises(KeyError, match='was not called'):
        MethodCalls().last('forward')


def test_stops_once_complete():
    net = _Net()
    spec = ReadSpec('head', 'calls', ('forward', ))
    rec = ModelRecorder(net, [spec], 'teacher')
    rec.active = rec.stop_when_complete = True
    with pytest.raises(StopForward):
        net(torch.randn(1, 2))  # stops before targets() runs
    assert rec.call_counts() == {spec: 1}


def test_deep_copy_calls_and_records_the_copy():
    net = _Net()
    rec = ModelRecorder(net, [SPEC], 'student')
    # the distiller shares its recorders with its copies (EMA hooks)
    twin = copy.deepcopy(net, {id(rec): rec})
    wrapper = twin.head.__dict__['forward']
    assert wrapper.owner is twin.head
    assert net.head.__dict__['forward'].owner is net.head
    rec.active = True
    twin(torch.randn(1, 2))
    assert rec.get(SPEC).last('forward').owner is twin.head
    # the copy's parameters get the gradient, not the original's
    rec.get(SPEC).last('forward').result[0].sum().backward()
    assert twin.head.conv.weight.grad is not None
    assert net.head.conv.weight.grad is None


def test_two_recorders_on_one_method_both_record():
    net = _Net()
    spec = ReadSpec('head', 'calls', ('targets', ))
    first = ModelRecorder(net, [spec], 'a')
    second = ModelRecorder(net, [spec], 'b')
    first.active = second.active = True
    net(torch.randn(1, 2))
    assert first.call_counts() == second.call_counts() == {spec: 1}
    second.remove()
    assert net.head.__dict__['targets'].report.recorder is first
    first.remove()
    assert 'targets' not in net.head.__dict__


def test_submodule_methods_are_recorded_under_their_path():
    net = _Net()
    spec = ReadSpec('head', 'calls', ('forward', 'conv.forward'))
    rec = ModelRecorder(net, [spec], 'student')
    rec.active = True
    x = torch.randn(2, 2)
    net(x)
    calls = rec.get(spec)
    conv = calls.last('conv.forward')
    assert conv.owner is net.head.conv and conv.name == 'forward'
    assert torch.equal(conv.result, net.head.conv(x))
    with pytest.raises(KeyError, match='conv'):
        ModelRecorder(net, [ReadSpec('head', 'calls', ('cnv.forward', ))],
                      'student')
