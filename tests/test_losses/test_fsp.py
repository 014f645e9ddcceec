"""FSP (Yim et al., CVPR 2017) against Gram matrices worked out by hand."""
import pytest
import torch

from conftest import save_teacher, tiny_pspnet, tiny_retinanet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import FlowOfSolutionKD, fsp_loss, fsp_matrix
from mmkd.losses.fsp import _places_spec


def _map(*channels):
    """(1, C, 1, W) map whose channel c holds ``channels[c]``."""
    return torch.tensor(channels, dtype=torch.float32)[None, :, None]


def test_fsp_matrix_by_hand():
    """F1 channels (1, 2), (0, 1); F2 channel (3, 4); H·W = 2:
    G = [(1·3 + 2·4) / 2, (0·3 + 1·4) / 2] = [5.5, 2]."""
    g = fsp_matrix(_map((1., 2.), (0., 1.)), _map((3., 4.)))
    assert g.shape == (1, 2, 1)
    assert torch.allclose(g[0, :, 0], torch.tensor([5.5, 2.]))


def test_the_larger_map_is_average_pooled_to_the_smaller():
    """2×2 map (1, 2; 3, 4) pooled to the 1×1 map's size: 2.5; G = 2.5·2.
    """
    big = torch.tensor([[1., 2.], [3., 4.]])[None, None]
    small = torch.full((1, 1, 1, 1), 2.)
    assert fsp_matrix(big, small).item() == pytest.approx(5.0)
    assert fsp_matrix(small, big).item() == pytest.approx(5.0)


def test_fsp_loss_by_hand():
    """Student G = [5.5, 2] (above); teacher F2 = (1, 0) gives G = [0.5,
    0]; mean of 5² and 2² = 14.5."""
    g_s = fsp_matrix(_map((1., 2.), (0., 1.)), _map((3., 4.)))
    g_t = fsp_matrix(_map((1., 2.), (0., 1.)), _map((1., 0.)))
    assert fsp_loss(g_s, g_t).item() == pytest.approx(14.5)
    with pytest.raises(ValueError, match='same shape'):
        fsp_loss(g_s, g_t[:, :1])


def test_term_pairs_consecutive_levels_with_weights():
    """Three levels a side, default pairs (0, 1) and (1, 2). Student and
    teacher share levels 0 and 1; teacher level 2 differs, so only pair
    (1, 2) costs: student G_12 = (0·3 + 1·4) / 2 = 2 against teacher
    (0·1 + 1·0) / 2 = 0, loss 4, times λ = 0.5 and loss_weight 3."""
    s = [_map((1., 2.)), _map((0., 1.)), _map((3., 4.))]
    t = [_map((1., 2.)), _map((0., 1.)), _map((1., 0.))]
    term = FlowOfSolutionKD('backbone', 'backbone', pair_weights=(7., .5),
                            adaptor=None, loss_weight=3.)
    term.setup(s, t, None)
    assert term.level_pairs(3) == ((0, 1), (1, 2))
    assert len(term.adaptors) == 0
    assert term(tuple(s), tuple(t), [], iteration=0).item() == \
        pytest.approx(3 * 0.5 * 4)
    only = FlowOfSolutionKD('backbone', 'backbone', pairs=[(2, 0)],
                            adaptor=None)
    only.setup(s, t, None)
    # G_20 = (3·1 + 4·2) / 2 = 5.5 against (1·1 + 0·2) / 2 = 0.5
    assert only(tuple(s), tuple(t), [], iteration=0).item() == \
        pytest.approx(25.)


def test_adaptors_only_where_channels_differ_and_gradients():
    s = (torch.randn(2, 4, 8, 8, requires_grad=True),
         torch.randn(2, 6, 4, 4, requires_grad=True),
         torch.randn(2, 8, 2, 2, requires_grad=True))
    t = (torch.randn(2, 4, 4, 4), torch.randn(2, 3, 2, 2),
         torch.randn(2, 5, 1, 1))
    term = FlowOfSolutionKD('backbone', 'backbone')
    term.setup(list(s), list(t), None)
    assert sorted(term.adaptors) == ['1', '2']
    assert term.adaptors['1'].conv.conv.in_channels == 6
    assert term.adaptors['1'].conv.conv.out_channels == 3
    loss = term(s, t, [], iteration=0)
    loss.backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in s)
    assert term.adaptors['2'].conv.conv.weight.grad.abs().sum() > 0
    assert not any(x.requires_grad for x in t)
    off = term(s, t, [], iteration=0) * 0  # warm-up form stays connected
    assert off.requires_grad


def test_places_spec_reads_several_modules_under_one_parent():
    assert _places_spec('backbone', 'student') == 'backbone'
    assert _places_spec(['backbone.layer1', 'backbone.layer2'],
                        'student') == dict(
        path='backbone', record='calls',
        methods=('layer1.forward', 'layer2.forward'))
    assert _places_spec(('a.b.c', 'a.b.d.e'), 'teacher')['methods'] == (
        'c.forward', 'd.e.forward')
    with pytest.raises(ValueError, match='no common parent'):
        _places_spec(['neck', 'backbone.layer1'], 'student')
    with pytest.raises(TypeError, match='student'):
        _places_spec(['backbone.layer1'], 'student')
    with pytest.raises(ValueError, match='twice'):
        _places_spec(['a.b', 'a.b'], 'teacher')


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(pairs=()), ValueError, 'pairs'),
    (dict(pairs=((0, 0), )), ValueError, 'pairs'),
    (dict(pairs=((0, -1), )), ValueError, 'pairs'),
    (dict(pairs=((0, 1.5), )), ValueError, 'pairs'),
    (dict(pair_weights=(-1., )), ValueError, 'pair_weights'),
    (dict(pair_weights='a'), TypeError, 'pair_weights'),
    (dict(pairs=((0, 1), ), pair_weights=(1., 1.)), ValueError,
     'pair_weights'),
    (dict(adaptor='ConvAdaptor'), TypeError, 'adaptor'),
    (dict(loss_weight=-1), ValueError, 'loss_weight')])
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        FlowOfSolutionKD('backbone', 'backbone', **kwargs)


def test_build_errors_name_the_term():
    term = FlowOfSolutionKD('backbone', 'backbone', adaptor=None)
    term.name = 'fsp'
    one = [torch.zeros(1, 2, 4, 4)]
    with pytest.raises(ValueError, match=r"'fsp'.*two levels"):
        term.setup(one, one, None)
    with pytest.raises(ValueError, match=r"'fsp'.*differ in channels"):
        term.setup(one * 2, [torch.zeros(1, 3, 4, 4)] * 2, None)
    beyond = FlowOfSolutionKD('backbone', 'backbone', pairs=((0, 3), ))
    beyond.name = 'fsp'
    with pytest.raises(ValueError, match=r"'fsp'.*beyond"):
        beyond.setup(one * 2, one * 2, None)
    flat = FlowOfSolutionKD('backbone', 'backbone')
    with pytest.raises(ValueError, match='N, C'):
        flat.setup([torch.zeros(1, 2)] * 2, [torch.zeros(1, 2)] * 2, None)


def test_backbone_stages_of_a_tiny_detector(det_teacher_ckpt):
    """Student ResNet base 8 (stages 16/32/64 channels), teacher base 16
    (32/64/128): an adaptor for each read level."""
    model = Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=det_teacher_ckpt),
        distill=dict(fsp=dict(type='FlowOfSolutionKD', student='backbone',
                              teacher='backbone')),
        probe_size=(64, 64))
    assert sorted(model.distill_terms.fsp.adaptors) == ['0', '1', '2']
    calls = []
    model.teacher.neck.register_forward_hook(lambda *a: calls.append(1))
    inputs, samples = make_probe_batch(model.student, (64, 64))
    losses = model.loss(torch.randn_like(inputs), samples)
    assert calls == []  # the teacher stops after its backbone
    loss = losses['loss_distill_fsp']
    assert loss.item() > 0
    loss.backward()
    grad = model.student.backbone.layer2[0].conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.teacher.parameters())


def test_named_stages_of_a_tiny_segmentor(tmp_path, seg_scope):
    """Stages the backbone does not output alone, read by their paths."""
    ckpt = save_teacher(tiny_pspnet(16, 32), str(tmp_path / 't.pth'),
                        'mmseg')
    stages = ['backbone.layer1', 'backbone.layer2', 'backbone.layer3']
    model = Distiller(
        student=tiny_pspnet(), teacher=dict(config=tiny_pspnet(16, 32),
                                            checkpoint=ckpt),
        distill=dict(fsp=dict(type='FlowOfSolutionKD', student=stages,
                              teacher=stages, loss_weight=1.0)),
        probe_size=(32, 32))
    term = model.distill_terms.fsp
    calls = []
    model.teacher.decode_head.register_forward_hook(
        lambda *a: calls.append(1))
    assert term.student_spec.methods == (
        'layer1.forward', 'layer2.forward', 'layer3.forward')
    inputs, samples = make_probe_batch(model.student, (32, 32))
    losses = model.loss(torch.rand_like(inputs), samples)
    assert calls == []  # the teacher stops after its layer3
    loss = losses['loss_distill_fsp']
    assert loss.item() > 0
    loss.backward()
    grad = model.student.backbone.layer1[0].conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_under_autocast_the_matrices_are_float32():
    s = (torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4))
    t = (torch.randn(2, 4, 8, 8), torch.randn(2, 3, 4, 4))
    term = FlowOfSolutionKD('backbone', 'backbone')
    term.setup(list(s), list(t), None)
    plain = term(s, t, [], iteration=0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = term(tuple(x.bfloat16() for x in s), t, [], iteration=0)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(plain.item(), rel=5e-2)
