"""ActivationBoundaryKD (Heo et al., AAAI 2019): values worked out by
hand, the authors' indicator form of the loss, gradients, build-time
errors and one loss() through a distiller."""
import math

import pytest
import torch

from conftest import tiny_retinanet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import ActivationBoundaryKD, activation_boundary_loss

# five responses: the teacher fires (t > 0) on the first two; t = 0
# counts as not firing
S = torch.tensor([2.0, 0.5, -0.5, -2.0, 0.0]).view(1, 1, 1, 5)
T = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0]).view(1, 1, 1, 5)
# fires:  (1 − 2)²₊ = 0, (1 − 0.5)² = 0.25
# silent: (1 − 0.5)² = 0.25, (1 − 2)²₊ = 0, (1 + 0)² = 1
HAND_SUM = 1.5


def _authors_form(s, t, m):
    """bhheo/AB_distillation's criterion_alternative_L2, element sum."""
    return ((s + m) ** 2 * ((s > -m) & (t <= 0)).float()
            + (s - m) ** 2 * ((s <= m) & (t > 0)).float()).sum()


def test_hand_value():
    assert activation_boundary_loss(S, T).item() == pytest.approx(HAND_SUM)
    # margin 0.25: fires (0.25 − 2)²₊ = (0.25 − 0.5)²₊ = 0; silent
    # (0.25 − 0.5)²₊ = 0, (0.25 − 2)²₊ = 0, (0.25 + 0)² = 0.0625
    assert activation_boundary_loss(S, T, 0.25).item() == pytest.approx(
        0.0625)


@pytest.mark.parametrize('normalize, expected', [
    ('mean', HAND_SUM / 5),   # / (N·C·H·W)
    ('batch', HAND_SUM / 1),  # / N, the authors' code
])
def test_normalisations(normalize, expected):
    term = ActivationBoundaryKD('a', 'b', adaptor=None, normalize=normalize,
                                loss_weight=2.0)
    term.setup([S], [T], None)
    assert term(S, T, [], iteration=0).item() == pytest.approx(2 * expected)


@pytest.mark.parametrize('margin', [1.0, 0.3, 2.5])
def test_matches_the_authors_indicator_form(margin):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) * 2
    t = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    assert activation_boundary_loss(s, t, margin).item() == pytest.approx(
        _authors_form(s, t, margin).item(), rel=1e-6)  # float32


def test_levels_summed_through_adaptors_at_teacher_size():
    g = torch.Generator().manual_seed(1)
    s = [torch.randn(2, 3, 8, 8, generator=g),
         torch.randn(2, 3, 4, 4, generator=g)]
    t = [torch.randn(2, 5, 4, 4, generator=g),
         torch.randn(2, 5, 2, 2, generator=g)]
    term = ActivationBoundaryKD('a', 'b')
    term.setup(s, t, None)
    # the authors' connector: 1x1 conv without bias + BN
    conv = term.adaptors[0].conv
    assert conv.conv.bias is None and conv.norm is not None
    assert (conv.conv.in_channels, conv.conv.out_channels) == (3, 5)
    term.eval()
    adapted = [torch.nn.functional.interpolate(
        a(x), size=y.shape[-2:], mode='bilinear', align_corners=False)
        for a, x, y in zip(term.adaptors, s, t)]
    expected = sum(_authors_form(a, y, 1.0) / y.numel()
                   for a, y in zip(adapted, t))
    assert term.compute(s, t, []).item() == pytest.approx(expected.item(),
                                                          rel=1e-5)


def test_matched_signs_with_margin_give_zero():
    t = torch.randn(2, 3, 4, 4)
    s = torch.where(t > 0, 1.5, -1.5)
    assert activation_boundary_loss(s, t).item() == 0


def test_gradient_reaches_the_student_only():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, requires_grad=True)
    activation_boundary_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize('bad, error, match', [
    (dict(margin=0), ValueError, 'margin must'),
    (dict(margin=-1.0), ValueError, 'margin must'),
    (dict(margin=math.nan), ValueError, 'margin must'),
    (dict(margin='1'), TypeError, 'margin must'),
    (dict(normalize='sum'), ValueError, 'normalize must'),
    (dict(loss_weight=-1.0), ValueError, 'loss_weight'),
])
def test_bad_arguments_are_refused(bad, error, match):
    with pytest.raises(error, match=match):
        ActivationBoundaryKD('a', 'b', **bad)


def test_channel_mismatch_without_adaptor_is_a_setup_error():
    term = ActivationBoundaryKD('a', 'b', adaptor=None)
    with pytest.raises(ValueError, match='adaptor=None'):
        term.setup([torch.zeros(1, 2, 2, 2)], [torch.zeros(1, 3, 2, 2)],
                   None)


def test_detection_distiller_end_to_end(det_teacher_ckpt):
    """The FPN outputs (convs without activation) as the pre-ReLU
    responses; 16 -> 32 channels through the adaptors."""
    model = Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=det_teacher_ckpt),
        distill=dict(ab=dict(type='ActivationBoundaryKD', student='neck',
                             teacher='neck')),
        probe_size=(64, 64)).train()
    inputs, samples = make_probe_batch(model.student, (64, 64))
    loss = model.loss(torch.randn_like(inputs), samples)['loss_distill_ab']
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    adaptor = model.distill_terms.ab.adaptors[0].conv.conv.weight
    assert adaptor.grad is not None and adaptor.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_reads_the_input_of_a_relu(det_teacher_ckpt):
    """record='input' of a ReLU module: the pre-activation response."""
    relu = dict(path='bbox_head.cls_convs.0.activate', record='input')
    model = Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=det_teacher_ckpt),
        distill=dict(ab=dict(type='ActivationBoundaryKD', student=relu,
                             teacher=relu)),
        probe_size=(64, 64)).train()
    inputs, samples = make_probe_batch(model.student, (64, 64))
    loss = model.loss(torch.randn_like(inputs), samples)['loss_distill_ab']
    assert torch.isfinite(loss) and loss > 0
