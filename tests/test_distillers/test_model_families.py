"""Every model family builds as a distiller student and trains a step.

One parametrised case a family: the student is the family's real
``mmdet::``/``mmseg::`` config, shrunk where it is big (a ResNet-18 with
8 base channels, 32-channel necks and heads, one transformer layer) and
left unchanged where it is small (RTMDet-tiny, RTMDet-Ins-tiny,
YOLOX-tiny, SegFormer-B0 but its decoder); the teacher is the same model
with saved random weights; one ``FeatureImitation`` term reads the neck
(a decoder layer or the backbone for segmentors). Each case checks that
the build-time probe gives the ground truth the family's own pipeline
gives (instance masks only to mask models, semantic maps only to semantic
heads, proposals only without an RPN, depth maps to depth estimators),
that one ``loss()`` holds exactly the student's own task losses plus
``loss_distill_fpn``, all finite, and that backward reaches the student
and the adaptor. RTMDet and YOLOX, trained with EMA hooks, also train
through a deep copy of the distiller.
"""
import copy
from dataclasses import dataclass, field
from typing import Dict, FrozenSet

import pytest
import torch
from conftest import init_as_the_runner_does, save_teacher
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.distillers.teacher import resolve_config_path

W = 32  # neck and head width of the shrunk models (GN needs 32 groups)

#: ResNet-18, 8 base channels: stages of 8, 16, 32 and 64 channels.
TINY_RESNET = {'backbone.depth': 18, 'backbone.base_channels': 8,
               'backbone.init_cfg': None}
TINY_FPN = dict(TINY_RESNET, **{'neck.in_channels': [8, 16, 32, 64],
                                'neck.out_channels': W})
TINY_DENSE_HEAD = dict(TINY_FPN, **{'bbox_head.in_channels': W,
                                    'bbox_head.feat_channels': W,
                                    'bbox_head.stacked_convs': 1})
TINY_FASTER_RCNN = dict(TINY_FPN, **{
    'rpn_head.in_channels': W, 'rpn_head.feat_channels': W,
    'roi_head.bbox_roi_extractor.out_channels': W,
    'roi_head.bbox_head.in_channels': W,
    'roi_head.bbox_head.fc_out_channels': 2 * W,
    'train_cfg.rcnn.sampler.num': 64})
TINY_FAST_RCNN = {k: v for k, v in TINY_FASTER_RCNN.items()
                  if not k.startswith('rpn_head')}
TINY_MASK_RCNN = dict(TINY_FASTER_RCNN, **{
    'roi_head.mask_roi_extractor.out_channels': W,
    'roi_head.mask_head.in_channels': W,
    'roi_head.mask_head.conv_out_channels': W,
    'roi_head.mask_head.num_convs': 1})

# HTC: three cascade stages, one more feature each for masks and semantics
TINY_HTC = dict(TINY_FPN, **{
    'rpn_head.in_channels': W, 'rpn_head.feat_channels': W,
    **{f'roi_head.{part}_roi_extractor.out_channels': W
       for part in ('bbox', 'mask', 'semantic')},
    **{f'roi_head.semantic_head.{k}': v for k, v in dict(
        in_channels=W, conv_out_channels=W, num_convs=1).items()},
    **{f'roi_head.bbox_head.{i}.{k}': v for i in range(3) for k, v in dict(
        in_channels=W, fc_out_channels=2 * W).items()},
    **{f'roi_head.mask_head.{i}.{k}': v for i in range(3) for k, v in dict(
        in_channels=W, conv_out_channels=W, num_convs=1).items()},
    **{f'train_cfg.rcnn.{i}.sampler.num': 64 for i in range(3)}})


def _one_layer(layers: str, width: int, **attention) -> Dict[str, object]:
    """One ``width``-wide layer in the encoder or decoder of a DETR."""
    overrides = {f'{layers}.num_layers': 1,
                 f'{layers}.layer_cfg.ffn_cfg.embed_dims': width,
                 f'{layers}.layer_cfg.ffn_cfg.feedforward_channels': 2 * W}
    for name, extra in attention.items():
        overrides[f'{layers}.layer_cfg.{name}.embed_dims'] = width
        overrides.update({f'{layers}.layer_cfg.{name}.{key}': value
                          for key, value in extra.items()})
    return overrides


TINY_DETR = dict(
    TINY_RESNET, **{'backbone.out_indices': (3, ),
                    'neck.in_channels': [64], 'neck.out_channels': W,
                    'positional_encoding.num_feats': W // 2,
                    'bbox_head.embed_dims': W, 'num_queries': 10},
    **_one_layer('encoder', W, self_attn_cfg=dict(num_heads=4)),
    **_one_layer('decoder', W, self_attn_cfg=dict(num_heads=4),
                 cross_attn_cfg=dict(num_heads=4)))
TINY_SOLOV2 = dict(TINY_FPN, **{
    'mask_head.in_channels': W, 'mask_head.feat_channels': W,
    'mask_head.stacked_convs': 1,
    'mask_head.mask_feature_head.feat_channels': W,
    'mask_head.mask_feature_head.out_channels': W})
TINY_MASK2FORMER = dict(TINY_RESNET, **{
    f'panoptic_head.{k}': v for k, v in {
        'in_channels': [8, 16, 32, 64], 'feat_channels': W,
        'out_channels': W, 'num_queries': 10,
        'positional_encoding.num_feats': W // 2,
        'pixel_decoder.positional_encoding.num_feats': W // 2,
        **_one_layer('pixel_decoder.encoder', W,
                     self_attn_cfg=dict(num_heads=4)),
        **_one_layer('transformer_decoder', W,
                     self_attn_cfg=dict(num_heads=4),
                     cross_attn_cfg=dict(num_heads=4))}.items()},
    **{'train_cfg.num_points': 256})
# DINO's decoder encodes box coordinates at a fixed 512 channels for its
# 256-channel queries: the width stays, the depth and queries shrink.
TINY_DINO = dict(
    TINY_RESNET, **{'neck.in_channels': [16, 32, 64], 'num_queries': 20,
                    'dn_cfg.group_cfg.num_dn_queries': 10},
    **_one_layer('encoder', 256), **_one_layer('decoder', 256))
TINY_DEFORMABLE_DETR = dict(
    TINY_RESNET, **{'neck.in_channels': [16, 32, 64], 'num_queries': 20},
    **_one_layer('encoder', 256), **_one_layer('decoder', 256))
# Conditional DETR encodes reference points at a fixed 256 channels
TINY_CONDITIONAL_DETR = dict(
    TINY_RESNET, **{'backbone.out_indices': (3, ), 'neck.in_channels': [64],
                    'num_queries': 10},
    **_one_layer('encoder', 256), **_one_layer('decoder', 256))


@dataclass(frozen=True)
class Family:
    """A model family: its config, how to shrink it, what to expect.

    Attributes:
        config: the real ``mmdet::``/``mmseg::`` config of the student.
        overrides: dotted keys of ``model`` set over it (``{}``: as is).
        task_losses: keys the student's own loss dict must hold.
        masks: whether its pipeline gives instance masks.
        semantic: whether its pipeline gives a semantic map (detectors).
        proposals: whether its pipeline gives proposals (no RPN).
        read: the module the distillation term reads.
        ema: whether its configs train with an EMA hook (deep copy).
    """
    config: str
    overrides: Dict[str, object] = field(default_factory=dict)
    task_losses: FrozenSet[str] = frozenset({'loss_cls', 'loss_bbox'})
    masks: bool = False
    semantic: bool = False
    proposals: bool = False
    read: str = 'neck'
    ema: bool = False

    @property
    def scope(self) -> str:
        return self.config.split('::')[0]


FAMILIES = {
    'retinanet': Family('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
                        TINY_DENSE_HEAD),
    'fcos': Family(
        'mmdet::fcos/fcos_r18_fpn_gn-head-center-normbbox-centeronreg-'
        'giou_8xb8-amp-lsj-200e_coco.py', TINY_DENSE_HEAD,
        frozenset({'loss_cls', 'loss_bbox', 'loss_centerness'})),
    'atss': Family('mmdet::atss/atss_r50_fpn_1x_coco.py', TINY_DENSE_HEAD,
                   frozenset({'loss_cls', 'loss_bbox', 'loss_centerness'})),
    'gfl': Family('mmdet::gfl/gfl_r50_fpn_1x_coco.py', TINY_DENSE_HEAD,
                  frozenset({'loss_cls', 'loss_bbox', 'loss_dfl'})),
    'faster_rcnn': Family(
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        TINY_FASTER_RCNN, frozenset({'loss_rpn_cls', 'loss_rpn_bbox',
                                     'loss_cls', 'loss_bbox', 'acc'})),
    'fast_rcnn': Family(
        'mmdet::fast_rcnn/fast-rcnn_r50_fpn_1x_coco.py', TINY_FAST_RCNN,
        frozenset({'loss_cls', 'loss_bbox', 'acc'}), proposals=True),
    'mask_rcnn': Family(
        'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', TINY_MASK_RCNN,
        frozenset({'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'}),
        masks=True),
    'panoptic_fpn': Family(
        'mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py',
        dict(TINY_MASK_RCNN, **{'semantic_head.in_channels': W,
                                'semantic_head.inner_channels': W}),
        frozenset({'loss_rpn_cls', 'loss_mask', 'loss_seg'}),
        masks=True, semantic=True),
    'htc': Family(
        'mmdet::htc/htc_r50_fpn_1x_coco.py', TINY_HTC,
        frozenset({'s0.loss_cls', 's2.loss_mask', 'loss_semantic_seg'}),
        masks=True, semantic=True),
    'solov2': Family('mmdet::solov2/solov2-light_r18_fpn_ms-3x_coco.py',
                     TINY_SOLOV2, frozenset({'loss_mask', 'loss_cls'}),
                     masks=True),
    'mask2former_panoptic': Family(
        'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py',
        TINY_MASK2FORMER, frozenset({'loss_cls', 'loss_mask', 'loss_dice'}),
        masks=True, semantic=True,
        read='panoptic_head.pixel_decoder.mask_feature'),
    # unchanged but for the ImageNet checkpoint; its assigner reads any
    # instance masks as tensors, so a probe giving masks failed the build
    'rtmdet': Family('mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
                     {'backbone.init_cfg': None}, ema=True),
    'rtmdet_ins': Family(
        'mmdet::rtmdet/rtmdet-ins_tiny_8xb32-300e_coco.py',
        {'backbone.init_cfg': None},
        frozenset({'loss_cls', 'loss_bbox', 'loss_mask'}), masks=True),
    'yolox': Family('mmdet::yolox/yolox_tiny_8xb8-300e_coco.py', {},
                    frozenset({'loss_cls', 'loss_bbox', 'loss_obj'}),
                    ema=True),
    'detr': Family('mmdet::detr/detr_r18_8xb2-500e_coco.py', TINY_DETR,
                   frozenset({'loss_cls', 'loss_bbox', 'loss_iou'})),
    'dino': Family('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', TINY_DINO,
                   frozenset({'loss_cls', 'enc_loss_cls', 'dn_loss_cls'})),
    'deformable_detr': Family(
        'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
        TINY_DEFORMABLE_DETR, frozenset({'loss_cls', 'loss_bbox', 'loss_iou'})),
    'deformable_detr_two_stage': Family(
        'mmdet::deformable_detr/'
        'deformable-detr-refine-twostage_r50_16xb2-50e_coco.py',
        TINY_DEFORMABLE_DETR,
        frozenset({'loss_cls', 'enc_loss_cls', 'loss_iou'})),
    'conditional_detr': Family(
        'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py',
        TINY_CONDITIONAL_DETR,
        frozenset({'loss_cls', 'loss_bbox', 'loss_iou'})),
    'dab_detr': Family('mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py',
                       TINY_DETR,
                       frozenset({'loss_cls', 'loss_bbox', 'loss_iou'})),
    'pspnet': Family(
        'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
        {'backbone.stem_channels': 8, 'backbone.base_channels': 8,
         'backbone.init_cfg': None, 'decode_head.in_channels': 64,
         'decode_head.channels': 16, 'auxiliary_head.in_channels': 32,
         'auxiliary_head.channels': 8},
        frozenset({'decode.loss_ce', 'aux.loss_ce'}),
        read='decode_head.bottleneck'),
    # VPD's Stable-Diffusion backbone swapped for a ResNet with the four
    # strides its depth head expects
    'depth': Family(
        'mmseg::vpd/vpd_sd_4xb8-25k_nyu-480x480.py',
        {'backbone': dict(_delete_=True, type='ResNetV1c', depth=18,
                          stem_channels=16, base_channels=16),
         'decode_head.in_channels': [16, 32, 64, 128],
         'decode_head.embed_dim': 8, 'decode_head.feature_dim': 64,
         'decode_head.num_deconv_filters': (16, 16, 16)},
        frozenset({'decode.loss_silog'}), read='backbone'),
    'segformer': Family(
        'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
        {'backbone.init_cfg': None, 'decode_head.channels': W},
        frozenset({'decode.loss_ce'}), read='decode_head.fusion_conv'),
}


def _model_config(family: Family) -> ConfigDict:
    cfg = Config(dict(model=Config.fromfile(
        resolve_config_path(family.config)).model))
    cfg.merge_from_dict({f'model.{k}': v
                         for k, v in family.overrides.items()})
    return cfg.model


def _total(losses: dict) -> torch.Tensor:
    parts = [v if isinstance(v, torch.Tensor) else sum(v)
             for k, v in losses.items() if 'loss' in k]
    return sum(p.sum() for p in parts)


def _assert_trains(model: Distiller, family: Family) -> None:
    """One loss() on a fresh random batch: the student's own task losses
    plus the distillation term, finite, with gradients to the student and
    the adaptor."""
    # a fresh batch each call: heads convert their ground truth in place
    inputs, samples = make_probe_batch(model.student, (64, 64))
    inputs = torch.rand_like(inputs) * 255
    model.zero_grad()
    losses = model.loss(inputs, samples)
    own = model.student.loss(inputs, make_probe_batch(model.student,
                                                      (64, 64))[1])
    assert set(losses) == set(own) | {'loss_distill_fpn'}
    assert family.task_losses <= set(losses)
    for key, value in losses.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            assert torch.isfinite(v).all(), key
    assert losses['loss_distill_fpn'] > 0
    _total(losses).backward()
    adaptor = next(model.distill_terms.fpn.adaptors.parameters())
    assert adaptor.grad is not None and adaptor.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.backbone.parameters())


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread while these tiny models run: on a shared 2-core
    machine, torch's default two threads spin against other processes
    and made this file ten times slower (135 s against 13 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('name', list(FAMILIES))
def test_family_builds_and_trains_as_a_student(name, tmp_path):
    family = FAMILIES[name]
    model_cfg = _model_config(family)
    with DefaultScope.overwrite_default_scope(family.scope):
        ckpt = save_teacher(model_cfg, str(tmp_path / 'teacher.pth'),
                            family.scope)
        model = Distiller(
            student=copy.deepcopy(model_cfg),
            teacher=dict(config=dict(default_scope=family.scope,
                                     model=model_cfg),
                         checkpoint=ckpt),
            distill=dict(fpn=dict(type='FeatureImitation',
                                  student=family.read,
                                  teacher=family.read)),
            probe_size=(64, 64))
        _, samples = make_probe_batch(model.student, (64, 64))
        if family.scope == 'mmdet':
            assert ('masks' in samples[0].gt_instances) == family.masks
            assert ('gt_sem_seg' in samples[0]) == family.semantic
            assert ('proposals' in samples[0]) == family.proposals
        else:
            truth = 'gt_depth_map' if name == 'depth' else 'gt_sem_seg'
            assert set(samples[0].keys()) == {truth}
            assert samples[0].get(truth).data.shape == (1, 64, 64)
        init_as_the_runner_does(model)
        model.train()
        _assert_trains(model, family)
        if family.ema:
            # EMA hooks deep-copy the model; the copy trains on its own
            copied = copy.deepcopy(model)
            assert copied.teacher is model.teacher
            model.zero_grad()
            _assert_trains(copied, family)
            assert all(p.grad is None for p in model.parameters())


#: the query-level terms every DETR-family student trains with, and the
#: student module their gradients must reach
QUERY_TERMS = {
    'match': (dict(type='HungarianMatchingKD'), 'bbox_head'),
    'target_aware': (dict(type='TargetAwareFeatureKD', topk=10), 'neck'),
}


#: the DETR-family students of FAMILIES
DETR_FAMILIES = ('detr', 'deformable_detr', 'deformable_detr_two_stage',
                 'conditional_detr', 'dab_detr', 'dino')


@pytest.mark.parametrize('term', sorted(QUERY_TERMS))
@pytest.mark.parametrize('name', DETR_FAMILIES)
def test_detr_family_trains_with_each_query_term(name, term, tmp_path):
    family = FAMILIES[name]
    model_cfg = _model_config(family)
    with DefaultScope.overwrite_default_scope(family.scope):
        ckpt = save_teacher(model_cfg, str(tmp_path / 'teacher.pth'),
                            family.scope)
        model = Distiller(
            student=copy.deepcopy(model_cfg),
            teacher=dict(config=dict(default_scope=family.scope,
                                     model=model_cfg),
                         checkpoint=ckpt),
            distill={term: QUERY_TERMS[term][0]}, probe_size=(64, 64))
        init_as_the_runner_does(model)
        model.train()
        torch.manual_seed(0)
        inputs, samples = make_probe_batch(model.student, (64, 64))
        losses = model.loss(torch.randn_like(inputs), samples)
    assert family.task_losses <= set(losses)
    distill = losses[f'loss_distill_{term}']
    assert torch.isfinite(distill) and distill > 0
    distill.backward()
    reached = model.student.get_submodule(QUERY_TERMS[term][1])
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in reached.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())


#: the DETR families whose queries are boxes (KD-DETR's points, the
#: teacher query group)
BOX_QUERY_FAMILIES = ('dab_detr', 'dino', 'deformable_detr_two_stage')


def _query_distiller(student: str, teacher: str, distill: dict,
                     tmp_path) -> Distiller:
    s_cfg = _model_config(FAMILIES[student])
    t_cfg = _model_config(FAMILIES[teacher])
    ckpt = save_teacher(t_cfg, str(tmp_path / 'teacher.pth'), 'mmdet')
    model = Distiller(
        student=copy.deepcopy(s_cfg),
        teacher=dict(config=dict(default_scope='mmdet', model=t_cfg),
                     checkpoint=ckpt),
        distill=distill, probe_size=(64, 64))
    init_as_the_runner_does(model)
    model.train()
    return model


def _assert_own_losses_unchanged(losses: dict, own: dict) -> None:
    """The distiller's loss dict holds the student's own losses as the
    student alone computes them (same seed)."""
    for key, value in own.items():
        if 'loss' in key:
            assert torch.allclose(torch.as_tensor(losses[key]).float(),
                                  torch.as_tensor(value).float()), key


@pytest.mark.parametrize('name', DETR_FAMILIES)
def test_kd_detr_points_train_box_query_families_and_refuse_others(
        name, tmp_path, monkeypatch):
    distill = dict(points=dict(type='ConsistentPointsKD', num_general=7,
                               num_specific=3))
    with DefaultScope.overwrite_default_scope('mmdet'):
        if name not in BOX_QUERY_FAMILIES:
            with pytest.raises(TypeError, match='learned embeddings'):
                _query_distiller(name, name, distill, tmp_path)
            return
        model = _query_distiller(name, name, distill, tmp_path)
        import mmkd.losses.detr_points as points_module
        seen = {}
        decode = points_module.decode_points

        def spy(head, family, call, boxes):
            seen.setdefault(call.owner is model.student, []).append(boxes)
            return decode(head, family, call, boxes)
        monkeypatch.setattr(points_module, 'decode_points', spy)
        inputs, samples = make_probe_batch(model.student, (64, 64))
        inputs = torch.randn_like(inputs)
        torch.manual_seed(0)
        losses = model.loss(inputs, samples)
        torch.manual_seed(0)
        own = model.student.loss(
            inputs, make_probe_batch(model.student, (64, 64))[1])
    # one set of points through both decoders: 7 general + 3 specific
    (student_boxes, ), teacher_boxes = seen[True], seen[False]
    assert student_boxes.shape[1:] == (10, 4)
    assert torch.equal(student_boxes, teacher_boxes[-1])
    # the points are an extra run: the student's own losses are unchanged
    _assert_own_losses_unchanged(losses, own)
    distill_loss = losses['loss_distill_points']
    assert torch.isfinite(distill_loss) and distill_loss > 0
    distill_loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.decoder.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())


def test_kd_detr_points_pair_a_dino_student_with_a_dab_detr_teacher(
        tmp_path):
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = _query_distiller(
            'dino', 'dab_detr',
            dict(points=dict(type='ConsistentPointsKD', num_general=5)),
            tmp_path)
        inputs, samples = make_probe_batch(model.student, (64, 64))
        losses = model.loss(torch.randn_like(inputs), samples)
    assert torch.isfinite(losses['loss_distill_points'])
    assert losses['loss_distill_points'] > 0


@pytest.mark.parametrize('name', DETR_FAMILIES)
def test_teacher_query_group_trains_every_detr_family(
        name, tmp_path):
    distill = dict(group=dict(type='QueryPriorAssignmentKD'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = _query_distiller(name, name, distill, tmp_path)
        # box queries from the teacher's boxes, the others from its
        # query embeddings
        assert model.distill_terms.group.by_boxes == (
            name in BOX_QUERY_FAMILIES)
        inputs, samples = make_probe_batch(model.student, (64, 64))
        inputs = torch.randn_like(inputs)
        torch.manual_seed(0)
        losses = model.loss(inputs, samples)
        torch.manual_seed(0)
        own = model.student.loss(
            inputs, make_probe_batch(model.student, (64, 64))[1])
    # the group is an extra decoder run: the student's own losses (and so
    # its own matching) are unchanged
    _assert_own_losses_unchanged(losses, own)
    group = losses['loss_distill_group']
    assert torch.isfinite(group) and group > 0
    group.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.decoder.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    # the recorders' get_targets wrappers, if any, are back in place
    assert 'get_targets' not in model.student.bbox_head.__dict__


def test_a_student_equal_to_its_teacher_gets_its_own_loss_from_the_group(
        tmp_path):
    """DAB-DETR student = teacher (same weights, no dropout): the teacher's
    anchors through the student's decoder are the student's own queries,
    and the teacher's assignment is the student's own matching, so the
    group's (one-layer) loss equals the student's own DETR loss."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = _query_distiller(
            'dab_detr', 'dab_detr',
            dict(group=dict(type='QueryPriorAssignmentKD'),
                 match=dict(type='HungarianMatchingKD')), tmp_path)
        model.student.load_state_dict(model.teacher.state_dict())
        model.eval()
        inputs, samples = make_probe_batch(model.student, (64, 64))
        inputs = torch.randn_like(inputs)
        term = model.distill_terms.group
        recorded = {}
        compute = term.compute

        def keep(student_calls, teacher_calls, data_samples):
            recorded['args'] = (student_calls, teacher_calls, data_samples)
            return compute(student_calls, teacher_calls, data_samples)
        term.compute = keep
        losses = model.loss(inputs, samples)
        (layer, ) = term.group_losses(*recorded['args'])
    own = sum(losses[k] for k in ('loss_cls', 'loss_bbox', 'loss_iou'))
    assert sum(layer).item() == pytest.approx(own.item(), rel=1e-5)
    assert losses['loss_distill_group'].item() == pytest.approx(
        own.item(), rel=1e-5)


def test_a_teacher_query_group_across_embedding_families_is_refused(
        tmp_path):
    with DefaultScope.overwrite_default_scope('mmdet'):
        with pytest.raises(TypeError, match='same family and width'):
            _query_distiller('conditional_detr', 'deformable_detr',
                             dict(group=dict(type='QueryPriorAssignmentKD')),
                             tmp_path)


def test_a_detr_teacher_teaches_a_cnn_student_through_its_neck_maps(
        tmp_path):
    """Mixed families: the DETR teacher's neck levels are maps a feature
    term aligns to a CNN student's; its encoder memory is a token
    sequence, refused with a message saying what to read instead."""
    s_cfg = _model_config(FAMILIES['retinanet'])
    t_cfg = _model_config(FAMILIES['detr'])
    with DefaultScope.overwrite_default_scope('mmdet'):
        ckpt = save_teacher(t_cfg, str(tmp_path / 'teacher.pth'), 'mmdet')

        def build(teacher_path):
            return Distiller(
                student=copy.deepcopy(s_cfg),
                teacher=dict(config=dict(default_scope='mmdet',
                                         model=copy.deepcopy(t_cfg)),
                             checkpoint=ckpt),
                distill=dict(fpn=dict(type='FeatureImitation',
                                      student='neck.fpn_convs.2',
                                      teacher=teacher_path)),
                probe_size=(64, 64))
        with pytest.raises(ValueError, match='token sequence'):
            build('encoder')
        model = build('neck')
        init_as_the_runner_does(model)
        model.train()
        inputs, samples = make_probe_batch(model.student, (64, 64))
        losses = model.loss(torch.rand_like(inputs) * 255, samples)
    assert torch.isfinite(losses['loss_distill_fpn'])
    assert losses['loss_distill_fpn'] > 0


def test_target_aware_masks_from_a_detr_teacher_teach_a_cnn_student(
        tmp_path):
    """DETRDistill's target-aware feature term needs a DETR teacher (its
    queries make the mask), not a DETR student: a RetinaNet learns from a
    DETR's neck map through it; a CNN teacher, which has no decoder
    queries, is refused with a message saying what to use instead."""
    retinanet = _model_config(FAMILIES['retinanet'])
    detr = _model_config(FAMILIES['detr'])
    term = dict(type='TargetAwareFeatureKD', student='neck.fpn_convs.2',
                topk=5)
    with DefaultScope.overwrite_default_scope('mmdet'):
        ckpt = save_teacher(detr, str(tmp_path / 'detr.pth'), 'mmdet')
        model = Distiller(
            student=copy.deepcopy(retinanet),
            teacher=dict(config=dict(default_scope='mmdet',
                                     model=copy.deepcopy(detr)),
                         checkpoint=ckpt),
            distill=dict(target_aware=term), probe_size=(64, 64))
        init_as_the_runner_does(model)
        model.train()
        inputs, samples = make_probe_batch(model.student, (64, 64))
        losses = model.loss(torch.rand_like(inputs) * 255, samples)
        loss = losses['loss_distill_target_aware']
        assert torch.isfinite(loss) and loss > 0
        loss.backward()
        assert model.student.neck.fpn_convs[2].conv.weight.grad.abs().sum() > 0
        # what the loss weighs each location by, as tools/feature_maps.py
        # draws it: one map of the teacher's single level, largest 1 per
        # layer squared and summed over its decoder layers
        from mmkd.term_weights import term_weight_maps
        maps = term_weight_maps(model, torch.rand_like(inputs) * 255,
                                samples)['target_aware']
        layers = model.teacher.decoder.num_layers
        assert len(maps) == 1 and maps[0].dim() == 2
        assert 0 < maps[0].max() <= layers + 1e-5

        cnn_ckpt = save_teacher(retinanet, str(tmp_path / 'cnn.pth'),
                                'mmdet')
        with pytest.raises(TypeError,
                           match='no forward_transformer.*FeatureImitation'):
            Distiller(
                student=copy.deepcopy(detr),
                teacher=dict(config=dict(default_scope='mmdet',
                                         model=copy.deepcopy(retinanet)),
                             checkpoint=cnn_ckpt),
                distill=dict(target_aware=dict(
                    type='TargetAwareFeatureKD', student='neck')),
                probe_size=(64, 64))
