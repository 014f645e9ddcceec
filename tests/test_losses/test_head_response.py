import math
from types import SimpleNamespace

import pytest
import torch
from fake_dense_preds import fake_preds

from mmkd.losses import (BackgroundWeightedSoftTargets,
                         BinaryClassificationKD, HeadClassificationKD)
from mmkd.losses.head_response import (binary_kd, softmax_kd,
                                       weighted_soft_cross_entropy)


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def _sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_softmax_kd_by_hand():
    s, t, tau = [0.0, 1.0, -1.0], [2.0, 0.0, 0.0], 2.0
    p_t = _softmax([v / tau for v in t])
    p_s = _softmax([v / tau for v in s])
    expected = tau**2 * sum(a * math.log(a / b) for a, b in zip(p_t, p_s))
    out = softmax_kd(torch.tensor([s]), torch.tensor([t]), tau)
    assert out.item() == pytest.approx(expected / 3, rel=1e-5)  # mean_c


def test_weighted_soft_cross_entropy_softmax_by_hand():
    s, t = [0.5, -1.0, 2.0], [1.0, 0.0, 1.5]  # two classes + background
    p_t, p_s = _softmax(t), _softmax(s)
    weights = [1.0, 1.0, 1.5]
    expected = -sum(w * a * math.log(b)
                    for w, a, b in zip(weights, p_t, p_s))
    out = weighted_soft_cross_entropy(torch.tensor([s]), torch.tensor([t]),
                                      1.5, use_sigmoid=False)
    assert out.item() == pytest.approx(expected, rel=1e-5)


def test_weighted_soft_cross_entropy_sigmoid_by_hand():
    s, t, w0 = [0.5, -1.0], [1.0, -2.0], 1.5
    expected = -sum(
        _sigmoid(b) * math.log(_sigmoid(a)) +
        w0 * (1 - _sigmoid(b)) * math.log(1 - _sigmoid(a))
        for a, b in zip(s, t))
    out = weighted_soft_cross_entropy(torch.tensor([s]), torch.tensor([t]),
                                      w0, use_sigmoid=True)
    assert out.item() == pytest.approx(expected, rel=1e-5)
    # w0 = 1 is the plain binary cross-entropy to the teacher
    plain = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([s]), torch.tensor([t]).sigmoid(), reduction='sum')
    out = weighted_soft_cross_entropy(torch.tensor([s]), torch.tensor([t]),
                                      1.0, use_sigmoid=True)
    assert out.item() == pytest.approx(plain.item(), rel=1e-5)
    # w0 = 0 keeps only the positive side
    positive = -sum(_sigmoid(b) * math.log(_sigmoid(a))
                    for a, b in zip(s, t))
    out = weighted_soft_cross_entropy(torch.tensor([s]), torch.tensor([t]),
                                      0.0, use_sigmoid=True)
    assert out.item() == pytest.approx(positive, rel=1e-5)
    # a teacher sure of the negative (σ(t) = 0 in float32) with w0 = 0:
    # nothing to learn there, and no NaN
    student = torch.tensor([[0.3, 0.2]], requires_grad=True)
    out = weighted_soft_cross_entropy(student, torch.tensor([[-200., 1.]]),
                                      0.0, use_sigmoid=True)
    out.sum().backward()
    assert torch.isfinite(out).all() and student.grad[0, 0] == 0
    # temperature divides both logits
    out = weighted_soft_cross_entropy(torch.tensor([s]), torch.tensor([t]),
                                      w0, use_sigmoid=True, temperature=2.0)
    halved = weighted_soft_cross_entropy(torch.tensor([s]) / 2,
                                         torch.tensor([t]) / 2, w0,
                                         use_sigmoid=True)
    assert out.item() == pytest.approx(halved.item(), rel=1e-6)
    # gradient by hand: d/ds = w0·(1 − p_t)·σ(s) − p_t·(1 − σ(s))
    student = torch.tensor([s], requires_grad=True)
    weighted_soft_cross_entropy(student, torch.tensor([t]), w0,
                                use_sigmoid=True).sum().backward()
    by_hand = [w0 * (1 - _sigmoid(b)) * _sigmoid(a) -
               _sigmoid(b) * (1 - _sigmoid(a)) for a, b in zip(s, t)]
    assert student.grad[0].tolist() == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize('mu', [0.5, 0.25, 1.0])
def test_soft_targets_term_mixes_by_mu_and_skips_ignored_priors(mu):
    student = torch.tensor([[0.5, -1.0], [1.0, 1.0], [3.0, 3.0]],
                           requires_grad=True)
    teacher = torch.tensor([[1.0, -2.0], [0.0, 0.0], [-3.0, -3.0]])
    # the head's own loss divides by 4 (its positives, or sampled priors)
    preds = fake_preds(student, teacher, avg_factor=4.0,
                       label_weights=torch.tensor([1.0, 1.0, 0.0]))
    loss = BackgroundWeightedSoftTargets(mu=mu).loss(preds)
    per_prior = weighted_soft_cross_entropy(student[:2], teacher[:2], 1.5,
                                            use_sigmoid=True)
    expected = per_prior.sum() / 4.0 * (1 - mu) / mu
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # normalizer='priors': the mean over the two counted priors
    mean = BackgroundWeightedSoftTargets(mu=mu, normalizer='priors').loss(
        preds)
    assert mean.item() == pytest.approx(
        (per_prior.mean() * (1 - mu) / mu).item(), rel=1e-5)
    if mu < 1:
        loss.backward()
        assert student.grad[2].abs().sum() == 0
        assert student.grad[:2].abs().sum() > 0


def test_class_kd_term_averages_over_the_region():
    student = torch.tensor([[0.0, 1.0], [2.0, 0.0], [5.0, -5.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 0.0], [-5.0, 5.0]])
    # prior 0 is a positive, 1 and 2 are background (label 2)
    preds = fake_preds(student, teacher, labels=torch.tensor([1, 2, 2]))
    main = HeadClassificationKD(temperature=2.0).loss(preds)
    kd = softmax_kd(student, teacher, 2.0)
    assert main.item() == pytest.approx(kd[0].item(), rel=1e-5)
    valid = HeadClassificationKD(region='valid', temperature=2.0).loss(preds)
    assert valid.item() == pytest.approx(kd.mean().item(), rel=1e-5)
    # an ignored prior (label weight 0) is out of the valid region
    ignored = fake_preds(student, teacher, labels=torch.tensor([1, 2, 2]),
                         label_weights=torch.tensor([1.0, 1.0, 0.0]))
    valid = HeadClassificationKD(region='valid',
                                 temperature=2.0).loss(ignored)
    assert valid.item() == pytest.approx(kd[:2].mean().item(), rel=1e-5)


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match='mu'):
        BackgroundWeightedSoftTargets(mu=0)
    with pytest.raises(ValueError, match="normalizer must be one of"):
        BackgroundWeightedSoftTargets(normalizer='mean')
    with pytest.raises(ValueError, match='region'):
        HeadClassificationKD(region='everything')


@pytest.mark.parametrize('beta', [1.0, 2.0])
def test_binary_kd_by_hand(beta):
    s, t = [0.5, -1.0], [1.0, -2.0]
    expected = 0.0
    for a, b in zip(s, t):
        p_t, p_s = _sigmoid(b), _sigmoid(a)
        bce = -(p_t * math.log(p_s) + (1 - p_t) * math.log(1 - p_s))
        expected += bce * abs(p_t - p_s)**beta
    out = binary_kd(torch.tensor([s]), torch.tensor([t]), beta)
    assert out.item() == pytest.approx(expected, rel=1e-5)
    # equal scores: the modulating factor is zero
    same = torch.tensor([[0.3, -0.7]])
    assert binary_kd(same, same, 1.0).item() == 0


def test_binary_kd_term_sums_valid_priors_over_the_positive_count():
    student = torch.tensor([[0.5, -1.0], [2.0, 0.0], [1.0, 1.0]])
    teacher = torch.tensor([[1.0, -2.0], [0.0, 0.0], [-3.0, 3.0]])
    preds = fake_preds(student, teacher,
                       label_weights=torch.tensor([1.0, 1.0, 0.0]))
    preds.avg_factor = 4.0
    loss = BinaryClassificationKD().loss(preds)
    per_prior = binary_kd(student, teacher, 1.0)
    assert loss.item() == pytest.approx(per_prior[:2].sum().item() / 4,
                                        rel=1e-5)
    preds.avg_factor = torch.tensor(0.0)  # no positives: divided by 1
    loss = BinaryClassificationKD().loss(preds)
    assert loss.item() == pytest.approx(per_prior[:2].sum().item(), rel=1e-5)


def test_binary_kd_refuses_softmax_heads():
    term = BinaryClassificationKD()
    with pytest.raises(TypeError, match='softmax'):
        term.check_heads(SimpleNamespace(use_sigmoid_cls=False),
                         SimpleNamespace(use_sigmoid_cls=True))
