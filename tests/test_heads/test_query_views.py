"""Query-head views (:mod:`mmkd.heads.query_views`): the layer mapping,
the family check, and what a DETR-family term reads from a DINO student's
own loss and a DINO teacher's forward."""
import copy
import sys
import os.path as osp

import pytest
import torch
from conftest import REPO, save_teacher
from mmengine.registry import DefaultScope

from mmkd.distillers import Distiller
from mmkd.heads.query_views import query_family, resolve_layer_pairs
from mmkd.losses.detr_head_term import QueryHeadTerm
from mmkd.registry import MODELS

sys.path.insert(0, osp.join(REPO, 'tests', 'test_distillers'))
from test_model_families import FAMILIES, _model_config  # noqa: E402

pytestmark = pytest.mark.usefixtures('no_leftover_scope')


def test_layers_align_from_the_last_by_default():
    assert resolve_layer_pairs(None, 6, 3, 't') == [(3, 0), (4, 1), (5, 2)]
    assert resolve_layer_pairs(None, 2, 6, 't') == [(0, 4), (1, 5)]
    assert resolve_layer_pairs('last', 6, 3, 't') == [(5, 2)]
    assert resolve_layer_pairs([(-1, -1), (0, 1)], 6, 3, 't') == [(5, 2),
                                                                   (0, 1)]
    with pytest.raises(ValueError, match=r'\(6, 0\) is out of range'):
        resolve_layer_pairs([(6, 0)], 6, 3, 't')
    with pytest.raises(TypeError, match='layers is None, "last"'):
        resolve_layer_pairs(['x'], 6, 3, 't')


def test_a_dense_head_is_no_query_family(det_scope):
    from mmdet.models.dense_heads import RetinaHead
    head = RetinaHead(num_classes=3, in_channels=8, feat_channels=8,
                      stacked_convs=1, anchor_generator=dict(
                          type='AnchorGenerator', octave_base_scale=4,
                          scales_per_octave=1, ratios=[1.0], strides=[8]))
    with pytest.raises(TypeError, match=r'DINO \(DINOHead\).*DETR '
                       r'\(DETRHead\)'):
        query_family(head, 'the student head')


class _Reader(QueryHeadTerm):
    """A test term: keeps what it read; its loss is the matched-query
    class logits' distance to the teacher's first queries."""
    read = []

    def loss(self, preds):
        type(self).read.append(preds)
        layer = preds.layers[-1]
        q = min(layer.cls_student.shape[1], layer.cls_teacher.shape[1])
        return (layer.cls_student[:, :q] - layer.cls_teacher[:, :q]).pow(
            2).mean()


@pytest.fixture
def reader_term():
    MODELS.register_module(name='_QueryReader', module=_Reader)
    _Reader.read = []
    yield '_QueryReader'
    MODELS._module_dict.pop('_QueryReader')


@pytest.mark.parametrize('name', ['dino', 'detr'])
def test_student_reads_its_matching_queries_and_own_assignment(
        name, tmp_path, reader_term):
    torch.manual_seed(0)
    family = FAMILIES[name]
    student = _model_config(family)
    student.decoder.num_layers = 2
    teacher = _model_config(family)
    teacher.num_queries = 30
    with DefaultScope.overwrite_default_scope('mmdet'):
        ckpt = save_teacher(teacher, str(tmp_path / 't.pth'), 'mmdet')
        model = Distiller(
            student=copy.deepcopy(student),
            teacher=dict(config=dict(default_scope='mmdet', model=teacher),
                         checkpoint=ckpt),
            distill=dict(match=dict(type=reader_term)),
            probe_size=(64, 64))
        model.init_weights()
        model.train()
        from mmkd.distillers.probe import make_probe_batch
        inputs, samples = make_probe_batch(model.student, (64, 64))
        losses = model.loss(torch.randn_like(inputs), samples)
    assert torch.isfinite(losses['loss_distill_match'])
    preds = _Reader.read[-1]
    assert preds.family == {'dino': 'DINO', 'detr': 'DETR'}[name]
    # the student's two decoder layers against the teacher's one: last
    assert [(x.student_layer, x.teacher_layer)
            for x in preds.layers] == [(1, 0)]
    layer = preds.layers[0]
    num_classes = student.bbox_head.num_classes
    # a softmax head (DETR) has a background channel
    channels = num_classes + (name == 'detr')
    assert preds.use_sigmoid == (name == 'dino')
    # the matching queries only: DINO's denoising queries are not among them
    queries = student.num_queries
    assert layer.cls_student.shape == (2, queries, channels)
    assert layer.box_student.shape == (2, queries, 4)
    # the teacher in eval mode: its 30 queries, no denoising ones
    assert layer.cls_teacher.shape == (2, 30, channels)
    assert not layer.cls_teacher.requires_grad
    # the student's own Hungarian assignment: one gt box per probe image
    assert layer.num_pos == 2
    assert ((layer.labels < num_classes).sum(1) == 1).all()
    assert preds.factors.tolist() == [[64., 64., 64., 64.]] * 2


def test_teacher_with_other_classes_fails_at_build(tmp_path, reader_term):
    family = FAMILIES['dino']
    student = _model_config(family)
    teacher = _model_config(family)
    teacher.bbox_head.num_classes = 7
    with DefaultScope.overwrite_default_scope('mmdet'):
        ckpt = save_teacher(teacher, str(tmp_path / 't.pth'), 'mmdet')
        with pytest.raises(Exception, match='predicts 7 classes'):
            Distiller(student=student,
                      teacher=dict(config=dict(default_scope='mmdet',
                                               model=teacher),
                                   checkpoint=ckpt),
                      distill=dict(match=dict(type=reader_term)),
                      probe_size=(64, 64))
