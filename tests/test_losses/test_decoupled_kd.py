"""DecoupledHeadKD (DKD on sigmoid heads) and the logit-standardisation
option of the head class-KD terms, on tiny tensors worked out by hand."""
import copy
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import save_teacher
from fake_dense_preds import fake_preds
from tiny_heads import det_batch, tiny_gfl, tiny_rpn

from mmkd import Distiller
from mmkd.losses import (BinaryClassificationKD, DecoupledHeadKD,
                         HeadClassificationKD)
from mmkd.losses.decoupled_kd import (binary_kl, decoupled_binary_kd,
                                      non_target_softmax_kl, target_mask)
from mmkd.losses.head_response import (binary_kd, softmax_kd,
                                       standardize_logits)


def _sigmoid(v):
    return 1 / (1 + math.exp(-v))


def _bin_kl(s, t):
    """KL(Bern(σ(t)) ‖ Bern(σ(s)))."""
    p, q = _sigmoid(t), _sigmoid(s)
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def _zscore(z):
    mean = sum(z) / len(z)
    std = math.sqrt(sum((v - mean)**2 for v in z) / (len(z) - 1))
    return [(v - mean) / (std + 1e-7) for v in z]


# two priors, three classes: prior 0 assigned class 1, prior 1 background
S = [[0.5, -1.0, 2.0], [-2.0, 0.3, -0.5]]
T = [[1.0, 1.5, -1.0], [-3.0, -1.0, 0.5]]
LABELS = [1, 3]


def _dkd_by_hand(s_rows, t_rows, labels, alpha, beta, tau, nckd='binary'):
    out = []
    for s, t, y in zip(s_rows, t_rows, labels):
        s, t = [v / tau for v in s], [v / tau for v in t]
        tckd = _bin_kl(s[y], t[y]) if y < len(s) else 0.0
        others = [c for c in range(len(s)) if c != y]
        if nckd == 'binary':
            non = sum(_bin_kl(s[c], t[c]) for c in others)
        else:
            non = _kl(_softmax([t[c] for c in others]),
                      _softmax([s[c] for c in others]))
        out.append(tau**2 * (alpha * tckd + beta * non))
    return out


def test_binary_kl_by_hand_and_zero_at_agreement():
    out = binary_kl(torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, -2.]]))
    assert out[0].tolist() == pytest.approx(
        [_bin_kl(0.5, 1.0), _bin_kl(-1.0, -2.0)], rel=1e-5)
    same = torch.tensor([[0.3, -4.0, 6.0]])
    assert binary_kl(same, same).abs().max() < 1e-6


def test_target_mask_has_no_target_at_background():
    mask = target_mask(torch.tensor([1, 3, 0]), 3)
    assert mask.tolist() == [[False, True, False], [False, False, False],
                             [True, False, False]]


@pytest.mark.parametrize('nckd', ['binary', 'softmax'])
def test_decoupled_binary_kd_by_hand(nckd):
    out = decoupled_binary_kd(torch.tensor(S), torch.tensor(T),
                              torch.tensor(LABELS), 1.0, 8.0, nckd)
    expected = _dkd_by_hand(S, T, LABELS, 1.0, 8.0, 1.0, nckd)
    assert out.tolist() == pytest.approx(expected, rel=1e-5)
    # the positive's parts by hand, written out once:
    # TCKD = KL(Bern(σ(1.5)) ‖ Bern(σ(-1))) on class 1
    tckd = _bin_kl(-1.0, 1.5)
    if nckd == 'binary':
        non = _bin_kl(0.5, 1.0) + _bin_kl(2.0, -1.0)
    else:
        non = _kl(_softmax([1.0, -1.0]), _softmax([0.5, 2.0]))
    assert out[0].item() == pytest.approx(tckd + 8 * non, rel=1e-5)


def test_binary_nckd_with_equal_weights_is_plain_per_class_binary_kl():
    """α = β = 1: TCKD + NCKD is the per-class binary KL of all classes
    (no coupling factor in the sigmoid case)."""
    s, t = torch.tensor(S), torch.tensor(T)
    out = decoupled_binary_kd(s, t, torch.tensor(LABELS), 1.0, 1.0)
    assert torch.allclose(out, binary_kl(s, t).sum(1), atol=1e-6)


def test_softmax_nckd_ignores_a_shift_of_the_non_target_logits():
    s, t = torch.tensor([S[0]]), torch.tensor([T[0]])
    target = target_mask(torch.tensor([1]), 3)
    shifted = s + torch.tensor([[5.0, 0.0, 5.0]])
    a = non_target_softmax_kl(s, t, target)
    b = non_target_softmax_kl(shifted, t, target)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    # one class only (e.g. a single-logit head's positive): no non-target
    assert non_target_softmax_kl(torch.tensor([[1.0]]), torch.tensor(
        [[2.0]]), torch.tensor([[True]])).item() == 0


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_term_sums_valid_priors_over_the_positive_count(tau):
    s = torch.tensor(S + [[3.0, 3.0, 3.0]], requires_grad=True)
    t = torch.tensor(T + [[-3.0, 0.0, 3.0]])
    preds = fake_preds(s, t, labels=torch.tensor(LABELS + [0]),
                       label_weights=torch.tensor([1.0, 0.5, 0.0]),
                       avg_factor=2.0)
    loss = DecoupledHeadKD(temperature=tau).loss(preds)
    per_prior = _dkd_by_hand(S, T, LABELS, 1.0, 8.0, tau)
    expected = (per_prior[0] + 0.5 * per_prior[1]) / 2.0
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # gradients reach the student only, and not the ignored prior
    loss.backward()
    assert s.grad[:2].abs().sum() > 0 and s.grad[2].abs().sum() == 0
    # the main region: positives only (prior 0), same normaliser
    main = DecoupledHeadKD(temperature=tau, region='main').loss(preds)
    assert main.item() == pytest.approx(per_prior[0] / 2.0, rel=1e-5)
    # no positives: divided by 1
    preds.avg_factor = torch.tensor(0.0)
    loss = DecoupledHeadKD(temperature=tau, alpha=0.0).loss(preds)
    nckd_only = _dkd_by_hand(S, T, LABELS, 0.0, 8.0, tau)
    assert loss.item() == pytest.approx(
        nckd_only[0] + 0.5 * nckd_only[1], rel=1e-5)


def test_teacher_gets_no_gradient():
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(T, requires_grad=True)
    preds = fake_preds(s, t, labels=torch.tensor(LABELS))
    terms = [DecoupledHeadKD(), DecoupledHeadKD(nckd='softmax'),
             DecoupledHeadKD(standardize_logits=True, temperature=2.0),
             HeadClassificationKD(region='valid', standardize_logits=True),
             BinaryClassificationKD(standardize_logits=True,
                                    temperature=2.0)]
    for term in terms:
        s.grad = None
        term.loss(preds).backward()
        assert s.grad.abs().sum() > 0, term
        assert t.grad is None, term


def test_standardize_logits_by_hand():
    z = [1.0, 2.0, 4.0]
    # mean 7/3, unbiased std sqrt(((4/3)² + (1/3)² + (5/3)²) / 2)
    std = math.sqrt(7 / 3)
    by_hand = [(v - 7 / 3) / std for v in z]
    out = standardize_logits(torch.tensor([z, [0.0, 1.0, 2.0]]))
    assert out[0].tolist() == pytest.approx(by_hand, rel=1e-6)
    assert out[1].tolist() == pytest.approx([-1.0, 0.0, 1.0], rel=1e-6)
    # invariant to each row's shift and scale
    again = standardize_logits(torch.tensor([[v * 3 - 10 for v in z]]))
    assert again[0].tolist() == pytest.approx(by_hand, rel=1e-5)


def test_standardized_class_kd_by_hand():
    s, t, tau = [0.0, 1.0, -1.0], [2.0, 0.0, 0.0], 2.0
    zs, zt = _zscore(s), _zscore(t)
    expected = tau**2 * _kl(_softmax([v / tau for v in zt]),
                            _softmax([v / tau for v in zs])) / 3
    preds = fake_preds(torch.tensor([s]), torch.tensor([t]),
                       labels=torch.tensor([0]))
    term = HeadClassificationKD(temperature=tau, standardize_logits=True)
    assert term.loss(preds).item() == pytest.approx(expected, rel=1e-5)
    # off (the default): the plain softened KD, as before
    plain = HeadClassificationKD(temperature=tau).loss(preds)
    assert plain.item() == pytest.approx(
        softmax_kd(torch.tensor([s]), torch.tensor([t]), tau).item())


def test_standardized_binary_kd_by_hand():
    s, t, tau = S[0], T[0], 2.0
    zs = [v / tau for v in _zscore(s)]
    zt = [v / tau for v in _zscore(t)]
    expected = 0.0
    for a, b in zip(zs, zt):
        p_t, p_s = _sigmoid(b), _sigmoid(a)
        bce = -(p_t * math.log(p_s) + (1 - p_t) * math.log(1 - p_s))
        expected += bce * abs(p_t - p_s)
    expected *= tau**2
    preds = fake_preds(torch.tensor([s]), torch.tensor([t]))
    term = BinaryClassificationKD(standardize_logits=True, temperature=tau)
    assert term.loss(preds).item() == pytest.approx(expected, rel=1e-5)
    # the defaults (τ = 1, no standardisation) are BCKD as before
    plain = BinaryClassificationKD().loss(preds)
    assert plain.item() == pytest.approx(
        binary_kd(torch.tensor([s]), torch.tensor([t]), 1.0).item())


def test_standardized_dkd_by_hand():
    zs = [_zscore(r) for r in S]
    zt = [_zscore(r) for r in T]
    expected = _dkd_by_hand(zs, zt, LABELS, 1.0, 8.0, 2.0)
    preds = fake_preds(torch.tensor(S), torch.tensor(T),
                       labels=torch.tensor(LABELS))
    term = DecoupledHeadKD(standardize_logits=True, temperature=2.0)
    assert term.loss(preds).item() == pytest.approx(sum(expected),
                                                    rel=1e-5)


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match='alpha and beta'):
        DecoupledHeadKD(alpha=-1)
    with pytest.raises(ValueError, match='alpha and beta'):
        DecoupledHeadKD(alpha=0, beta=0)
    with pytest.raises(ValueError, match='nckd'):
        DecoupledHeadKD(nckd='kl')
    with pytest.raises(ValueError, match='region'):
        DecoupledHeadKD(region='everything')
    for term in (DecoupledHeadKD, BinaryClassificationKD,
                 HeadClassificationKD):
        with pytest.raises(ValueError, match='temperature'):
            term(temperature=0)
        with pytest.raises(TypeError, match='standardize_logits'):
            term(standardize_logits='yes')


def test_heads_that_do_not_suit_are_refused():
    sigmoid = SimpleNamespace(use_sigmoid_cls=True, cls_out_channels=3)
    softmax = SimpleNamespace(use_sigmoid_cls=False, cls_out_channels=4)
    single = SimpleNamespace(use_sigmoid_cls=True, cls_out_channels=1)
    with pytest.raises(TypeError, match='softmax'):
        DecoupledHeadKD().check_heads(softmax, sigmoid)
    DecoupledHeadKD().check_heads(single, single)  # fine without z-score
    for term in (DecoupledHeadKD, BinaryClassificationKD,
                 HeadClassificationKD):
        with pytest.raises(ValueError, match='1 logit a prior'):
            term(standardize_logits=True).check_heads(single, single)
    HeadClassificationKD(standardize_logits=True).check_heads(softmax,
                                                              softmax)


TERMS = dict(
    dkd=dict(type='DecoupledHeadKD'),
    dkd_soft=dict(type='DecoupledHeadKD', nckd='softmax', region='main'),
    dkd_ls=dict(type='DecoupledHeadKD', standardize_logits=True,
                temperature=2.0),
    kd_ls=dict(type='HeadClassificationKD', region='valid',
               standardize_logits=True),
    bc_ls=dict(type='BinaryClassificationKD', standardize_logits=True,
               temperature=2.0))


def test_end_to_end_through_the_distiller(tmp_path, det_scope):
    ckpt = save_teacher(tiny_gfl(32, 16), str(tmp_path / 't.pth'), 'mmdet')
    model = Distiller(
        student=tiny_gfl(),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_gfl(32, 16)), checkpoint=ckpt),
        distill=copy.deepcopy(TERMS), probe_size=(64, 96)).train()
    assert model.distill_terms.dkd.view.family == 'GFLHead'
    losses = model.loss(*det_batch())
    for name in TERMS:
        value = losses[f'loss_distill_{name}']
        assert value.dim() == 0 and torch.isfinite(value) and value > 0
    cls = model.student.bbox_head.gfl_cls.weight
    grad, = torch.autograd.grad(losses['loss_distill_dkd'], cls,
                                retain_graph=True)
    assert grad.abs().sum() > 0
    total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                for v in losses.values())
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())


def test_standardizing_a_single_logit_head_is_a_build_error(tmp_path,
                                                            det_scope):
    ckpt = save_teacher(tiny_rpn(), str(tmp_path / 't.pth'), 'mmdet')
    with pytest.raises(ValueError, match='1 logit a prior'):
        Distiller(student=tiny_rpn(),
                  teacher=dict(config=dict(default_scope='mmdet',
                                           model=tiny_rpn()),
                               checkpoint=ckpt),
                  # mmdet's RPN detector holds its RPNHead as bbox_head
                  distill=dict(dkd=dict(type='DecoupledHeadKD',
                                        standardize_logits=True)),
                  probe_size=(64, 96))
