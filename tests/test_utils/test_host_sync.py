"""Host synchronisations of a distillation step, counted on the CPU
(:mod:`mmkd.utils.host_sync`): a term that adds one beyond its budget
fails here, before anyone profiles it on a GPU."""
import pytest
import torch
from conftest import save_teacher
from mmengine.logging import MessageHub
from tiny_heads import tiny_gfl

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.utils.host_sync import added_host_syncs, count_host_syncs

SIZE = 64


def test_counts_item_and_boolean_indexing_but_not_arithmetic():
    x = torch.randn(8)
    assert count_host_syncs(lambda: (x * 2).sum()) == {}
    assert count_host_syncs(lambda: x.sum().item()) == {
        'aten::_local_scalar_dense': 1}
    counts = count_host_syncs(lambda: x[x > 0])
    assert counts.get('aten::nonzero', 0) + counts.get(
        'aten::masked_select', 0) >= 1
    assert sum(count_host_syncs(lambda: torch.unique(x)).values()) == 1


ADAPTOR = dict(adaptor=dict(type='ConvAdaptor'))
#: term -> the host synchronisations it may add to the student's step.
#: Feature terms add none. The head terms that compute on the positive or
#: region rows only (``DensePredictions.select``) add one, the wait for the
#: mask's size, in exchange for computing on a few rows instead of all.
BUDGETS = {
    'feature_imitation': (dict(type='FeatureImitation', student='neck',
                               teacher='neck'), 0),
    'fgfi': (dict(type='FeatureImitation', student='neck', teacher='neck',
                  mask=dict(type='FGFIMask', thr=0.5)), 0),
    'cwd': (dict(type='ChannelWiseKD', student='neck', teacher='neck',
                 **ADAPTOR), 0),
    'pkd': (dict(type='PearsonFeatureKD', student='neck', teacher='neck',
                 **ADAPTOR), 0),
    'fgd': (dict(type='FocalGlobalKD', student='neck', teacher='neck',
                 **ADAPTOR), 0),
    'bckd': (dict(type='BinaryClassificationKD'), 0),
    'ld_main': (dict(type='LocalizationDistillation'), 1),
    'ld_valuable': (dict(type='LocalizationDistillation',
                         region='valuable'), 1),
    'cls_kd': (dict(type='HeadClassificationKD'), 1),
    'bounded_regression': (dict(type='TeacherBoundedRegression'), 1),
}


@pytest.fixture
def gfl_teacher(tmp_path, det_scope):
    return save_teacher(tiny_gfl(32), str(tmp_path / 'teacher.pth'),
                        'mmdet')


@pytest.mark.parametrize('name', sorted(BUDGETS))
def test_terms_add_no_more_host_syncs_than_their_budget(
        name, gfl_teacher, runner_state_restored):
    MessageHub.get_instance('mmkd_test_host_sync').update_info('iter', 100)
    term, budget = BUDGETS[name]
    model = Distiller(
        student=tiny_gfl(16),
        teacher=dict(config=dict(default_scope='mmdet', model=tiny_gfl(32)),
                     checkpoint=gfl_teacher),
        distill={name: term}, probe_size=(SIZE, SIZE)).train()
    torch.manual_seed(3)
    inputs, samples = make_probe_batch(model.student, (SIZE, SIZE))
    inputs = torch.randn_like(inputs)
    added = added_host_syncs(lambda: model.loss(inputs, samples),
                             lambda: model.student.loss(inputs, samples))
    assert added <= budget, (
        f'{name} adds {added} host synchronisations to the student\'s step '
        f'(budget {budget}): see mmkd/utils/host_sync.py for what counts')
