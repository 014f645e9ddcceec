import pickle
import urllib.error

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmkd.utils import (is_url, load_state_dict_file, load_teacher_weights,
                        nearest_names)
from mmkd.utils.checkpoint import (history_buffer_statistic, hub_cache_path,
                                   load_state_dict_strictly)


def test_mmengine_resume_state_loads_with_weights_only(tmp_path):
    hub = MessageHub.get_instance('mmkd-test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_info('best_score', np.float64(0.25))
    state = dict(state_dict=dict(w=torch.ones(2)),
                 message_hub=hub.state_dict(),
                 meta=dict(seed=np.int64(3), arr=np.arange(3)))
    path = tmp_path / 'ckpt.pth'
    torch.save(state, path)
    loaded = load_state_dict_file(str(path))
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.current() == 1.5
    assert loaded['meta']['arr'].tolist() == [0, 1, 2]
    assert buffer.mean() == 1.5  # default statistics are restored
    # and plain torch.load, as MMEngine's resume calls it, works too
    assert torch.load(path, weights_only=True)['meta']['seed'] == 3


def test_plain_mmengine_checkpoint_loads_and_keeps_statistics(tmp_path):
    """A checkpoint as plain MMEngine writes it (mmkd not involved): the
    buffers pickle their statistics methods as getattr(HistoryBuffer, ..)."""
    import pickle
    import pickletools
    buffer = HistoryBuffer()
    buffer.update(2.0)
    ops = [arg for op, arg, _ in pickletools.genops(pickle.dumps(buffer, 2))
           if op.name == 'GLOBAL']
    assert '__builtin__ getattr' in ops  # what the stand-in resolves
    path = tmp_path / 'plain.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)),
                    message_hub=dict(log_scalars=dict(loss=buffer))), path)
    loaded = load_state_dict_file(str(path))['message_hub']
    assert loaded['log_scalars']['loss'].statistics('mean') == 2.0


class _GetattrOfSomethingElse:

    def __reduce__(self):
        return (getattr, (HistoryBuffer, 'update'))


def test_getattr_is_resolved_for_the_statistics_only(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save(dict(state_dict={}, payload=_GetattrOfSomethingElse()), path)
    with pytest.raises(RuntimeError, match=r"Refused getattr\('HistoryBuffer"
                       r"', 'update'\)"):
        load_state_dict_file(str(path))
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_statistic(np.ndarray, 'mean')
    assert history_buffer_statistic(HistoryBuffer, 'mean') is \
        HistoryBuffer.mean


class _Evil:

    def __reduce__(self):
        return (print, ('arbitrary code ran',))


def test_unknown_types_are_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, payload=_Evil()), path)
    with pytest.raises(RuntimeError, match='weights_only=True'):
        load_state_dict_file(str(path))


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        load_state_dict_file(str(tmp_path / 'missing.pth'))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='Could not load'):
        load_state_dict_file(str(bad))


def test_checkpoint_without_num_batches_tracked_loads(tmp_path):
    """torch fills in BatchNorm's counter; it is not a missing key."""
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1),
                                 torch.nn.BatchNorm2d(4))
    state = {k: v for k, v in source.state_dict().items()
             if not k.endswith('num_batches_tracked')}
    path = tmp_path / 'old.pth'
    torch.save(dict(state_dict=state), path)
    target = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1),
                                 torch.nn.BatchNorm2d(4))
    load_teacher_weights(target, str(path))
    assert torch.equal(target[0].weight, source[0].weight)
    # any other missing key is still reported
    del state['1.running_var']
    torch.save(dict(state_dict=state), path)
    with pytest.raises(RuntimeError,
                       match=r'missing keys \(1\): 1.running_var'):
        load_teacher_weights(target, str(path))


def test_only_http_urls_count_as_downloads():
    assert is_url('https://download.openmmlab.com/a.pth')
    assert is_url('http://host/a.pth')
    assert not is_url('file:///tmp/a.pth')
    assert not is_url('s3://bucket/a.pth')
    assert not is_url('/tmp/https://a.pth')


def test_nearest_names():
    names = ['neck', 'neck.fpn_convs', 'neck.fpn_convs.0', 'neck.fpn_convs.1',
             'backbone.layer1']
    assert nearest_names('neck.fpn_conv.0', names)[0] == 'neck.fpn_convs.0'
    assert 'neck.fpn_convs.0' in nearest_names('neck.fpn_convs.9', names)


URL = 'https://download.openmmlab.com/mmdetection/v2.0/x/r101_20200130.pth'


@pytest.fixture
def offline(monkeypatch):
    """torch.hub cannot reach the network: what a DNS failure raises."""
    calls = []

    def no_network(url, **kwargs):
        calls.append(url)
        raise urllib.error.URLError('[Errno -2] Name or service not known')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', no_network)
    return calls


def test_hub_cache_path_is_where_torch_hub_looks():
    assert hub_cache_path(URL + '?x=1') == (
        f'{torch.hub.get_dir()}/checkpoints/r101_20200130.pth')


def test_an_offline_download_names_the_owner_url_and_cache(offline):
    with pytest.raises(ConnectionError) as info:
        load_state_dict_file(URL, owner='teachers.r101')
    message = str(info.value)
    assert offline == [URL]
    for part in ('teachers.r101 checkpoint', URL, hub_cache_path(URL),
                 'Name or service not known', 'set teachers.r101.checkpoint'):
        assert part in message, part
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_a_distiller_with_an_unreachable_teacher_url_says_which(
        offline, tmp_path, det_scope):
    from conftest import tiny_retinanet

    from mmkd import Distiller
    teacher = dict(config=dict(default_scope='mmdet',
                               model=tiny_retinanet(16, 32)),
                   checkpoint=URL)
    with pytest.raises(ConnectionError,
                       match=r'the teachers\.r101 checkpoint https://'):
        Distiller(student=tiny_retinanet(8, 16), teachers=dict(r101=teacher),
                  distill=dict(fpn=dict(type='FeatureImitation',
                                        student='neck', teacher='neck')),
                  probe_size=(64, 64))
    assert offline == [URL]


def test_a_checkpoint_that_does_not_fit_names_its_owner(tmp_path):
    """The message says whose checkpoint it is: a student's checkpoint
    (tools/feature_maps.py) is not called a teacher's."""
    source = torch.nn.Conv2d(3, 4, 1)
    path = tmp_path / 'student.pth'
    torch.save(dict(state_dict=source.state_dict()), path)
    target = torch.nn.Conv2d(3, 8, 1)
    with pytest.raises(RuntimeError, match=r"^The student checkpoint .*"
                       r"student.pth' does not fit the student's config"):
        load_teacher_weights(target, str(path), owner='student')


def test_a_loaded_checkpoint_is_fitted_with_its_prefix_stripped():
    """load_state_dict_strictly takes what load_state_dict_file returned,
    so a caller that reads the checkpoint itself loads it once."""
    torch.manual_seed(0)
    source = torch.nn.Conv2d(3, 4, 1)
    loaded = dict(state_dict={f'student.{k}': v for k, v in
                              source.state_dict().items()} |
                  {'distill_terms.fpn.weight': torch.zeros(1)})
    target = torch.nn.Conv2d(3, 4, 1)
    load_state_dict_strictly(target, loaded, 'in memory',
                             strip_prefix='student.', owner='student')
    assert torch.equal(target.weight, source.weight)
    with pytest.raises(RuntimeError, match='in memory.*holds no state dict'):
        load_state_dict_strictly(target, [1, 2], 'in memory')
