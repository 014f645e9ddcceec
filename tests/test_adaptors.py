import pytest
import torch

from mmkd.adaptors import ConvAdaptor, align_spatial
from mmkd.losses import FeatureImitation


def test_channels_are_inferred_per_level():
    term = FeatureImitation('neck', 'neck')
    student = [torch.randn(2, 8, 16, 16), torch.randn(2, 8, 8, 8)]
    teacher = [torch.randn(2, 32, 16, 16), torch.randn(2, 32, 8, 8)]
    term.setup(student, teacher, None)
    assert len(term.adaptors) == 2
    conv = term.adaptors[0].conv.conv
    assert (conv.in_channels, conv.out_channels) == (8, 32)
    assert conv.kernel_size == (1, 1)
    loss = term(tuple(student), tuple(teacher), [], 0)
    loss.backward()
    assert conv.weight.grad.abs().sum() > 0


def test_student_map_is_resized_to_the_teacher():
    term = FeatureImitation('a', 'b')
    s, t = torch.randn(1, 4, 5, 7), torch.randn(1, 6, 10, 14)
    term.setup([s], [t], None)
    adapted = align_spatial(term.adaptors[0](s), t.shape[-2:])
    assert adapted.shape == t.shape
    assert term(s, t, [], 0).item() == pytest.approx(
        torch.nn.functional.mse_loss(adapted, t).item(), rel=1e-5)


def test_adaptor_norm_and_activation():
    adaptor = ConvAdaptor(4, 8, kernel_size=3, norm_cfg=dict(type='BN'),
                          act_cfg=dict(type='ReLU'))
    out = adaptor(torch.randn(2, 4, 6, 6))
    assert out.shape == (2, 8, 6, 6) and (out >= 0).all()


def test_channel_mismatch_without_adaptor_names_term_and_shapes():
    term = FeatureImitation('neck', 'neck', adaptor=None)
    term.name = 'fpn'
    with pytest.raises(ValueError, match=r"'fpn'.*\(2, 8, 4, 4\).*"
                       r"\(2, 16, 4, 4\)"):
        term.setup([torch.zeros(2, 8, 4, 4)], [torch.zeros(2, 16, 4, 4)],
                   None)


def test_level_count_mismatch_is_an_error():
    term = FeatureImitation('neck', 'backbone')
    with pytest.raises(ValueError, match='2 level.*3'):
        term.setup([torch.zeros(1, 4, 4, 4)] * 2,
                   [torch.zeros(1, 4, 4, 4)] * 3, None)


def test_non_spatial_features_cannot_be_aligned():
    term = FeatureImitation('a', 'b')
    term.name = 'hint'
    with pytest.raises(ValueError,
                       match=r"'hint'.*\(2, 8\).*\(2, 8, 4, 4\)"):
        term.setup([torch.zeros(2, 8)], [torch.zeros(2, 8, 4, 4)], None)


def test_explicit_channels_that_do_not_fit_are_rejected():
    term = FeatureImitation('a', 'b', adaptor=dict(
        type='ConvAdaptor', in_channels=4, out_channels=8))
    with pytest.raises(ValueError, match='adaptor channels 4->8'):
        term.setup([torch.zeros(1, 4, 2, 2)], [torch.zeros(1, 16, 2, 2)],
                   None)


def test_adaptor_runs_under_autocast_and_loss_is_float32():
    term = FeatureImitation('a', 'b')
    s, t = torch.randn(1, 4, 4, 4), torch.randn(1, 8, 4, 4)
    term.setup([s], [t], None)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = term(s, t.bfloat16(), [], 0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
