"""FT: the factor and reconstruction losses against values worked out by
hand, which modules each stage trains, the frozen paraphraser (no drift,
saved and restored), and one distiller step on either side of the stage
switch."""
import math

import pytest
import torch
from conftest import tiny_retinanet

from mmkd import Distiller
from mmkd.distillers.probe import make_probe_batch
from mmkd.losses import FactorTransfer
from mmkd.losses.factor_transfer import (Paraphraser, factor_transfer_loss,
                                         reconstruction_loss, translator)


def test_factor_loss_by_hand():
    # image 1: s = (3, 4) -> (0.6, 0.8), t = (1, 0) -> (1, 0)
    s = torch.tensor([3., 4.]).view(1, 2, 1, 1)
    t = torch.tensor([1., 0.]).view(1, 2, 1, 1)
    # (|0.6 - 1| + |0.8 - 0|) / 2 elements
    assert factor_transfer_loss(s, t).item() == pytest.approx(0.6)
    # image 2: s = (0, 2) -> (0, 1), t = (0, -5) -> (0, -1): |0| + |2|;
    # the mean runs over the batch's 4 elements: (0.4 + 0.8 + 0 + 2) / 4
    s2 = torch.cat([s, torch.tensor([0., 2.]).view(1, 2, 1, 1)])
    t2 = torch.cat([t, torch.tensor([0., -5.]).view(1, 2, 1, 1)])
    assert factor_transfer_loss(s2, t2).item() == pytest.approx(0.8)
    # the norm is per image over C·H·W: scaling one image changes nothing
    assert factor_transfer_loss(s2 * 7, t2).item() == pytest.approx(0.8)


def test_reconstruction_loss_by_hand():
    rebuilt = torch.tensor([1., 2., 3., 4.]).view(1, 1, 2, 2)
    target = torch.ones(1, 1, 2, 2)
    # (0 + 1 + 4 + 9) / 4 and (0 + 1 + 2 + 3) / 4
    assert reconstruction_loss(rebuilt, target).item() == 3.5
    assert reconstruction_loss(rebuilt, target, 'l1').item() == 1.5


def test_layout_follows_the_authors_code():
    p = Paraphraser(64, 0.5)
    convs = [m for m in p.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == \
        [(64, 64), (64, 32), (32, 32)]
    deconvs = [m for m in p.decoder
               if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in deconvs] == \
        [(32, 32), (32, 64), (64, 64)]
    assert all(c.kernel_size == (3, 3) for c in convs + deconvs)
    slopes = {m.negative_slope for m in p.modules()
              if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.1}
    t = translator(16, 32)
    assert [(c.in_channels, c.out_channels) for c in t
            if isinstance(c, torch.nn.Conv2d)] == [(16, 16), (16, 32),
                                                   (32, 32)]
    term = FactorTransfer('neck', 'neck')
    assert (term.rate, term.loss_weight, term.reconstruction) == \
        (0.5, 500.0, 'l2')


def _centre_taps(conv, pairs):
    """A 3×3 conv passing input channel i to output channel o (centre
    tap 1) for each (i, o), every other weight and the bias 0."""
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for i, o in pairs:
            if isinstance(conv, torch.nn.ConvTranspose2d):
                conv.weight[i, o, 1, 1] = 1  # (in, out, kH, kW)
            else:
                conv.weight[o, i, 1, 1] = 1


def _identity_like_term(**kwargs):
    """Teacher C = 2 (factor channels 1), student C = 1. On positive
    maps: factor = teacher channel 0, reconstruction = (t0, t0),
    translator = identity."""
    term = FactorTransfer('neck', 'neck', **kwargs)
    s = torch.full((1, 1, 2, 2), 2.)
    t = torch.stack([torch.tensor([[1., 2.], [3., 4.]]),
                     torch.ones(2, 2)]).unsqueeze(0)
    term.setup([s], [t], student_model=None)
    enc = term.paraphrasers[0].encoder
    dec = term.paraphrasers[0].decoder
    _centre_taps(enc[0], [(0, 0), (1, 1)])
    _centre_taps(enc[2], [(0, 0)])
    _centre_taps(enc[4], [(0, 0)])
    _centre_taps(dec[0], [(0, 0)])
    _centre_taps(dec[2], [(0, 0), (0, 1)])
    _centre_taps(dec[4], [(0, 0), (1, 1)])
    for conv in term.translators[0][::2]:
        _centre_taps(conv, [(0, 0)])
    return term, s, t


def test_both_stages_by_hand():
    term, s, t = _identity_like_term(paraphraser_iters=5,
                                     reconstruction_weight=2.)
    # stage 1: reconstruction (t0, t0) of (t0, t1 = 1):
    # Σ (t0 − 1)² / 8 = (0 + 1 + 4 + 9) / 8 = 1.75, weight 2
    assert term([s], [t], [], 0).item() == pytest.approx(3.5)
    assert term([s], [t], [], 4).item() == pytest.approx(3.5)
    # stage 2: F_S = s = 2 everywhere -> 1/2 each; F_T = (1, 2, 3, 4)/√30;
    # Σ |1/2 − i/√30| = 4/√30, mean over 4 elements: 1/√30; β = 500
    expected = 500 / math.sqrt(30)
    assert term([s], [t], [], 5).item() == pytest.approx(expected)
    # the factor comes from the copy taken at the switch
    assert bool(term.paraphraser_frozen)
    assert term.compute([s], [t], []).item() == pytest.approx(
        1.75 + 1 / math.sqrt(30))
    # warm-up and the switch turn stage 2 off as for any term
    term.enabled = False
    assert term([s], [t], [], 6).item() == 0


def _grads(params):
    return [None if p.grad is None else p.grad.abs().sum().item()
            for p in params]


def _random_term(paraphraser_iters=2):
    torch.manual_seed(0)
    term = FactorTransfer('neck', 'neck',
                          paraphraser_iters=paraphraser_iters)
    s = [torch.randn(2, 3, 6, 6), torch.randn(2, 3, 3, 3)]
    t = [torch.randn(2, 4, 6, 6), torch.randn(2, 4, 3, 3)]
    term.setup(s, t, student_model=None)
    return term, s, t


def test_stage_one_trains_only_the_paraphraser():
    term, s, t = _random_term()
    s = [x.requires_grad_() for x in s]
    term(s, t, [], 0).backward()
    assert all(g > 0 for g in _grads(term.paraphrasers.parameters()))
    # student and translators in the graph (DDP), with zero gradients
    assert all(g == 0 for g in _grads(term.translators.parameters()))
    assert all(x.grad is not None and x.grad.abs().sum() == 0 for x in s)
    assert all(p.grad is None for p in term.frozen_paraphrasers.parameters())


def test_stage_two_trains_only_the_student_and_translator():
    term, s, t = _random_term()
    s = [x.requires_grad_() for x in s]
    term(s, t, [], 2).backward()
    assert all(g > 0 for g in _grads(term.translators.parameters()))
    assert all(x.grad.abs().sum() > 0 for x in s)
    # the trainable paraphraser: in the graph, zero gradients; the
    # frozen copy that gives the factors: no gradient at all
    assert all(g == 0 for g in _grads(term.paraphrasers.parameters()))
    assert not any(p.requires_grad
                   for p in term.frozen_paraphrasers.parameters())
    assert all(p.grad is None for p in term.frozen_paraphrasers.parameters())


def test_the_frozen_paraphraser_does_not_drift():
    term, s, t = _random_term()
    # momentum and weight decay move a parameter whose gradient is zero;
    # the translators are left out so that the loss can only change
    # through the teacher's factors
    params = [p for name, p in term.named_parameters()
              if not name.startswith('translators')]
    optim = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1)
    for iteration in range(2):  # stage 1 moves the paraphrasers
        optim.zero_grad()
        term(s, t, [], iteration).backward()
        optim.step()
    trained = [p.detach().clone() for p in term.paraphrasers.parameters()]
    losses = []
    for iteration in range(2, 6):
        optim.zero_grad()
        loss = term(s, t, [], iteration)
        losses.append(loss.item())
        loss.backward()
        optim.step()
    for p, q in zip(term.frozen_paraphrasers.parameters(), trained):
        assert torch.equal(p, q)
    assert losses == [losses[0]] * 4


def test_state_dict_round_trip_restores_the_paraphraser():
    term, s, t = _random_term()
    with torch.no_grad():
        for p in term.paraphrasers.parameters():
            p.add_(1.0)  # "trained"
    term(s, t, [], 2)  # the switch: copied
    state = term.state_dict()
    assert {'paraphrasers.0.encoder.0.weight',
            'frozen_paraphrasers.1.encoder.4.bias', 'paraphraser_frozen',
            'translators.1.4.weight'} <= set(state)
    resumed, _, _ = _random_term()
    resumed.load_state_dict(state)
    for a, b in zip(resumed.frozen_paraphrasers.parameters(),
                    term.frozen_paraphrasers.parameters()):
        assert torch.equal(a, b)
    # a resumed stage-2 run does not copy the paraphraser again
    with torch.no_grad():
        for p in resumed.paraphrasers.parameters():
            p.zero_()
    assert resumed(s, t, [], 3).item() == pytest.approx(
        term(s, t, [], 3).item())
    for a, b in zip(resumed.frozen_paraphrasers.parameters(),
                    term.frozen_paraphrasers.parameters()):
        assert torch.equal(a, b)


def test_restarting_stage_one_copies_anew_at_the_switch():
    term, s, t = _random_term()
    term(s, t, [], 2)
    term(s, t, [], 0)  # a new run from iteration 0 on these weights
    assert not bool(term.paraphraser_frozen)
    with torch.no_grad():
        for p in term.paraphrasers.parameters():
            p.add_(1.0)
    term(s, t, [], 2)
    for a, b in zip(term.frozen_paraphrasers.parameters(),
                    term.paraphrasers.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize('kwargs, error, name', [
    (dict(paraphraser_iters=-1), ValueError, 'paraphraser_iters'),
    (dict(paraphraser_iters=1.5), TypeError, 'paraphraser_iters'),
    (dict(rate=0), ValueError, 'rate'),
    (dict(reconstruction='mse'), ValueError, 'reconstruction'),
    (dict(reconstruction_weight=-1), ValueError, 'reconstruction_weight'),
    (dict(loss_weight=float('nan')), ValueError, 'loss_weight'),
])
def test_bad_arguments_are_refused(kwargs, error, name):
    with pytest.raises(error, match=name):
        FactorTransfer('neck', 'neck', **kwargs)


def test_non_map_records_are_refused():
    term = FactorTransfer('neck', 'neck')
    with pytest.raises(ValueError, match=r'\(N, C, H, W\)'):
        term.setup([torch.randn(2, 3)], [torch.randn(2, 3)], None)


def test_distiller_step_across_the_stage_switch(det_teacher_ckpt,
                                                runner_state_restored):
    from mmengine.logging import MessageHub
    model = Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=det_teacher_ckpt),
        distill=dict(ft=dict(type='FactorTransfer', student='neck',
                             teacher='neck', paraphraser_iters=1)),
        probe_size=(64, 64))
    term = model.distill_terms.ft
    assert len(term.paraphrasers) == len(term.translators) == 3
    assert term.translators[0][2].out_channels == 16  # 0.5 × 32
    keys = set(model.state_dict())
    assert 'distill_terms.ft.frozen_paraphrasers.0.encoder.0.weight' in keys
    assert 'distill_terms.ft.paraphraser_frozen' in keys
    inputs, samples = make_probe_batch(model.student, (64, 64))
    inputs = torch.randn_like(inputs)
    model.train()
    hub = MessageHub.get_instance('ft-test')  # what the Runner updates
    student = [p for p in model.student.parameters() if p.requires_grad]
    groups = dict(student=student,
                  paraphrasers=list(term.paraphrasers.parameters()),
                  translators=list(term.translators.parameters()))
    order = list(groups)
    flat = [p for name in order for p in groups[name]]

    def distill_grads(iteration):
        hub.update_info('iter', iteration)
        loss = model.loss(inputs, samples)['loss_distill_ft']
        grads = torch.autograd.grad(loss, flat, allow_unused=True)
        sums, i = {}, 0
        for name in order:
            chunk = grads[i:i + len(groups[name])]
            i += len(groups[name])
            sums[name] = sum(0. if g is None else g.abs().sum().item()
                             for g in chunk)
        return loss.item(), sums

    loss, sums = distill_grads(0)  # stage 1
    assert loss > 0 and sums['paraphrasers'] > 0
    assert sums['student'] == 0 and sums['translators'] == 0
    assert not bool(term.paraphraser_frozen)
    loss, sums = distill_grads(1)  # stage 2
    assert bool(term.paraphraser_frozen)
    assert loss > 0 and sums['student'] > 0 and sums['translators'] > 0
    assert sums['paraphrasers'] == 0
