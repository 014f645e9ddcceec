"""Mixed precision: adaptors, masks, terms and the distiller under autocast.

On this CPU-only machine autocast runs on the CPU (bfloat16, and float16
where the CPU kernels have it); the code paths are those of ``--amp`` on a
GPU, the speed is not.
"""
import itertools

import pytest
import torch
from conftest import tiny_pspnet, tiny_retinanet

from mmkd import Distiller
from mmkd.adaptors import ConvAdaptor
from mmkd.distillers.probe import make_probe_batch
from mmkd.distillers.teacher import (check_teacher_reference,
                                     parse_teacher_autocast)
from mmkd.losses import (FeatureImitation, PixelwiseKD,
                         pixelwise_kl_divergence)
from mmkd.masks import FGFIMask, GtBoxMask

LOW = (torch.float16, torch.bfloat16)
ANY = (torch.float32, ) + LOW


# -- adaptors -----------------------------------------------------------------
@pytest.mark.parametrize('dtype', LOW)
@pytest.mark.parametrize('norm_cfg', [None, dict(type='BN'),
                                      dict(type='GN', num_groups=2)])
def test_adaptor_takes_low_precision_input_outside_autocast(dtype, norm_cfg):
    torch.manual_seed(0)
    adaptor = ConvAdaptor(4, 6, norm_cfg=norm_cfg).eval()
    x = torch.randn(2, 4, 5, 5).to(dtype)
    out = adaptor(x)  # float32 weights: an unguarded conv raises here
    assert out.dtype == torch.float32
    assert torch.equal(out, adaptor(x.float()))


@pytest.mark.parametrize('dtype', LOW)
def test_adaptor_follows_autocast(dtype):
    adaptor = ConvAdaptor(4, 6)
    with torch.autocast('cpu', dtype=dtype):
        for x in (torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3).to(dtype)):
            assert adaptor(x).dtype == dtype


def test_half_adaptor_takes_float32_input():
    adaptor = ConvAdaptor(4, 6).to(torch.bfloat16)
    assert adaptor(torch.randn(1, 4, 3, 3)).dtype == torch.bfloat16


# -- terms given records of mixed dtypes --------------------------------------
def _imitation(s, t, **kwargs):
    torch.manual_seed(0)
    term = FeatureImitation('a', 'b', **kwargs)
    term.setup([s.float()], [t.float()], None)
    return term


@pytest.mark.parametrize('s_dtype,t_dtype', list(itertools.product(ANY, ANY)))
def test_feature_imitation_mixes_dtypes_and_computes_in_float32(
        s_dtype, t_dtype):
    s, t = torch.randn(2, 4, 6, 6), torch.randn(2, 8, 3, 3)
    s, t = s.to(s_dtype), t.to(t_dtype)
    term = _imitation(s, t)
    loss = term(s, t, [], 0)
    assert loss.dtype == torch.float32
    # the same as on the records cast to float32 first
    assert torch.allclose(loss, term(s.float(), t.float(), [], 0),
                          rtol=1e-6, atol=0)
    loss.backward()
    assert term.adaptors[0].conv.conv.weight.grad.dtype == torch.float32


def test_feature_imitation_counts_locations_in_float32():
    """257 locations: bfloat16 would round the count to 256 (8-bit
    mantissa). s = 0, t = 1, 2 channels: Σ(s−t)² / (C·N·H·W) = 514 / 514."""
    s = torch.zeros(1, 2, 1, 257)
    t = torch.ones(1, 2, 1, 257, dtype=torch.bfloat16)
    term = _imitation(s, t, adaptor=None)
    assert term(s, t, [], 0).item() == 1.0
    term = _imitation(s, t, adaptor=None, normalize='fgfi')
    assert term(s, t, [], 0).item() == 514 / (2 * 257)


@pytest.mark.parametrize('s_dtype,t_dtype', list(itertools.product(ANY, ANY)))
def test_pixelwise_kd_mixes_dtypes_and_resizes_in_float32(s_dtype, t_dtype):
    s, t = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 4, 4)
    s, t = s.to(s_dtype), t.to(t_dtype)
    term = PixelwiseKD('a', 'b', temperature=2.0)
    loss = term(s, t, [], 0)
    assert loss.dtype == torch.float32
    resized = torch.nn.functional.interpolate(
        s.float(), size=(4, 4), mode='bilinear', align_corners=False)
    assert torch.equal(loss, pixelwise_kl_divergence(resized, t.float(), 2.0))


def test_terms_under_autocast_give_float32_losses():
    s, t = torch.randn(2, 4, 6, 6), torch.randn(2, 8, 6, 6)
    term = _imitation(s, t)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        imitation = term(s, t.bfloat16(), [], 0)
        kd = PixelwiseKD('a', 'b')(s, t[:, :4].half(), [], 0)
    assert imitation.dtype == kd.dtype == torch.float32
    reference = term(s.bfloat16(), t.bfloat16(), [], 0)  # autocast off
    # under autocast the adaptor multiplies in bfloat16 (8-bit mantissa)
    assert torch.allclose(imitation, reference, rtol=2e-2)


# -- masks --------------------------------------------------------------------
def _sample(boxes, size=(64, 64)):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    sample = DetDataSample(metainfo=dict(batch_input_shape=size))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32),
        labels=torch.zeros(len(boxes), dtype=torch.long))
    return sample


class _Student(torch.nn.Module):

    def __init__(self):
        super().__init__()
        from mmdet.models.task_modules import AnchorGenerator
        self.bbox_head = torch.nn.Module()
        self.bbox_head.prior_generator = AnchorGenerator(
            strides=[8, 16], ratios=[0.5, 1.0], octave_base_scale=4,
            scales_per_octave=1)


@pytest.mark.parametrize('mask', [GtBoxMask(bg_weight=0.25), FGFIMask()])
def test_masks_are_float32_and_unchanged_under_autocast(mask):
    mask.setup(_Student())
    samples = [_sample([[3.3, 5.7, 30.1, 22.9]]),
               _sample([[40.5, 33.2, 61.0, 60.4], [1, 1, 9, 9]])]
    shapes = [(2, 8, 8, 8), (2, 8, 4, 4)]
    expected = mask(shapes, samples, torch.device('cpu'))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = mask(shapes, samples, torch.device('cpu'))
    for e, g in zip(expected, got):
        assert g.dtype == torch.float32 and torch.equal(e, g)
    # a real mask, neither empty nor all ones
    assert 0 < sum(g.sum() for g in got) < sum(g.numel() for g in got)


# -- the teacher option -------------------------------------------------------
@pytest.mark.parametrize('value,expected', [
    (False, False), (True, True), ('float16', torch.float16),
    ('bfloat16', torch.bfloat16), (torch.bfloat16, torch.bfloat16)])
def test_teacher_autocast_values(value, expected):
    assert parse_teacher_autocast(value) is expected


@pytest.mark.parametrize('value', ['fp16', 'float32', 1, None])
def test_bad_teacher_autocast_is_refused_before_building(value, tmp_path):
    with pytest.raises(ValueError, match='teacher.autocast must be False, '
                       'True, "float16" or "bfloat16"'):
        # no checkpoint exists: the option is checked first
        check_teacher_reference(dict(config='x.py', autocast=value,
                                     checkpoint=str(tmp_path / 'no.pth')))


# -- distillers under autocast ------------------------------------------------
def _det(ckpt, autocast):
    return Distiller(
        student=tiny_retinanet(8, 16),
        teacher=dict(config=dict(default_scope='mmdet',
                                 model=tiny_retinanet(16, 32)),
                     checkpoint=ckpt, autocast=autocast),
        distill=dict(
            fgfi=dict(type='FeatureImitation', student='neck',
                      teacher='neck', mask=dict(type='FGFIMask'),
                      normalize='fgfi'),
            box=dict(type='FeatureImitation', student='neck',
                     teacher='neck', mask=dict(type='GtBoxMask',
                                               bg_weight=0.1))),
        probe_size=(64, 64))


def _seg(ckpt, autocast):
    return Distiller(
        student=tiny_pspnet(8, 16),
        teacher=dict(config=dict(default_scope='mmseg',
                                 model=tiny_pspnet(16, 32)),
                     checkpoint=ckpt, autocast=autocast),
        distill=dict(
            logits=dict(type='PixelwiseKD', student='decode_head.conv_seg',
                        teacher='decode_head.conv_seg', loss_weight=10),
            feat=dict(type='FeatureImitation', student='backbone.layer4',
                      teacher='backbone.layer4')),
        probe_size=(32, 32))


def _dtypes_of(module, into):
    """Record the dtype of every tensor ``module`` outputs (before the
    recorder's hook, which stops the teacher once its records are in)."""
    def hook(mod, args, output):
        outputs = output if isinstance(output, (list, tuple)) else [output]
        into.extend(o.dtype for o in outputs)
    return module.register_forward_hook(hook, prepend=True)


def _check_amp_step(model, size, read, amp_dtype, teacher_dtype):
    torch.manual_seed(1)
    inputs, samples = make_probe_batch(model.student, size)
    inputs = torch.rand_like(inputs) * 255
    student_dtypes, teacher_dtypes = [], []
    handles = [_dtypes_of(model.student.get_submodule(read), student_dtypes),
               _dtypes_of(model.teacher.get_submodule(read), teacher_dtypes)]
    try:
        with torch.autocast('cpu', dtype=amp_dtype):
            losses = model.loss(inputs, samples)
    finally:
        for handle in handles:
            handle.remove()
    assert set(student_dtypes) == {amp_dtype}  # autocast reached it
    assert set(teacher_dtypes) == {teacher_dtype}
    distill = {k: v for k, v in losses.items() if 'distill' in k}
    assert len(distill) == 2
    for name, value in distill.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value) and value > 0, name
    loss, _ = model.parse_losses(losses)
    loss.backward()
    for name, param in model.named_parameters():
        if param.requires_grad and name.startswith('distill_terms'):
            assert param.grad is not None, name
            assert param.grad.dtype == torch.float32, name
            assert torch.isfinite(param.grad).all(), name
    assert all(p.grad is None for p in model.teacher.parameters())


# teacher autocast=True follows the enclosing (--amp) dtype
AMP_CASES = [(dtype, autocast) for dtype in LOW for autocast in (False, True)]


@pytest.mark.parametrize('dtype,autocast', AMP_CASES)
def test_det_distiller_under_autocast(det_teacher_ckpt, dtype, autocast):
    torch.manual_seed(0)
    model = _det(det_teacher_ckpt, autocast).train()
    assert model.teacher_autocast is autocast
    _check_amp_step(model, (64, 64), 'neck', dtype,
                    dtype if autocast else torch.float32)


@pytest.mark.parametrize('dtype,autocast', AMP_CASES)
def test_seg_distiller_under_autocast(seg_teacher_ckpt, dtype, autocast):
    torch.manual_seed(0)
    model = _seg(seg_teacher_ckpt, autocast).train()
    _check_amp_step(model, (32, 32), 'backbone.layer4', dtype,
                    dtype if autocast else torch.float32)


def test_teacher_autocast_without_amp_gives_close_float32_losses(
        det_teacher_ckpt):
    """Only the teacher in bfloat16: its neck differs from float32 by
    bfloat16 rounding, so the losses agree to about 1 %, not exactly."""
    losses = {}
    for autocast in (False, 'bfloat16'):
        torch.manual_seed(0)
        model = _det(det_teacher_ckpt, autocast)
        torch.manual_seed(1)
        inputs, samples = make_probe_batch(model.student, (64, 64))
        out = model.loss(torch.rand_like(inputs) * 255, samples)
        losses[autocast] = {k: v for k, v in out.items() if 'distill' in k}
        assert all(v.dtype == torch.float32 for v in
                   losses[autocast].values())
    for key, value in losses[False].items():
        assert torch.allclose(losses['bfloat16'][key], value, rtol=5e-2)
        assert not torch.equal(losses['bfloat16'][key], value)


# -- MMEngine's AmpOptimWrapper through the Runner ----------------------------
def _det_loader(num_images=4, size=64):
    from mmdet.structures import DetDataSample
    from mmengine.dataset import pseudo_collate
    from mmengine.structures import InstanceData
    generator = torch.Generator().manual_seed(2)
    data = []
    for _ in range(num_images):
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[12., 10., 48., 40.]]),
            labels=torch.tensor([1]))
        # small values: tiny random models on 0..255 inputs give huge losses
        image = torch.randint(0, 4, (3, size, size), generator=generator,
                              dtype=torch.uint8)
        data.append(dict(inputs=image, data_samples=sample))
    return torch.utils.data.DataLoader(data, batch_size=2,
                                       collate_fn=pseudo_collate)


def test_amp_optim_wrapper_trains_through_the_runner(
        det_teacher_ckpt, tmp_path, monkeypatch, runner_state_restored):
    """MMEngine 0.10.7's ``AmpOptimWrapper`` asserts a GPU (or NPU, MLU,
    MUSA) in ``__init__``; its autocast (``mmengine.runner.amp.autocast``)
    does run on the CPU in bfloat16. The device check is bypassed here,
    so the real wrapper and Runner run ``--amp``'s code path; its
    ``torch.cuda.amp.GradScaler`` disables itself without CUDA, which
    bfloat16 (float32's exponent range) does not need anyway."""
    from mmengine.optim import AmpOptimWrapper
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    from mmengine.runner import Runner
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    torch.manual_seed(0)
    model = _det(det_teacher_ckpt, False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runner = Runner(
        model=model, work_dir=str(tmp_path),
        experiment_name=f'amp-{tmp_path.name}',
        train_dataloader=_det_loader(),
        train_cfg=dict(by_epoch=False, max_iters=2),
        optim_wrapper=dict(type='AmpOptimWrapper', dtype='bfloat16',
                           optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False)),
        log_processor=dict(by_epoch=False),
        default_scope='mmdet')
    student_dtypes, teacher_dtypes = [], []
    handles = [_dtypes_of(model.student.neck, student_dtypes),
               _dtypes_of(model.teacher.neck, teacher_dtypes)]
    try:
        runner.train()
    finally:
        for handle in handles:
            handle.remove()
    assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
    assert runner.iter == 2
    assert set(student_dtypes) == {torch.bfloat16}
    assert set(teacher_dtypes) == {torch.float32}  # autocast=False
    for key in ('loss_distill_fgfi', 'loss_distill_box', 'loss'):
        value = runner.message_hub.get_scalar(f'train/{key}').current()
        assert value > 0 and torch.isfinite(torch.tensor(value)), key
    after = model.state_dict()
    for key in ('student.neck.lateral_convs.0.conv.weight',
                'distill_terms.box.adaptors.0.conv.conv.weight'):
        assert after[key].dtype == torch.float32
        assert not torch.equal(before[key], after[key]), key
    saved = torch.load(tmp_path / 'iter_2.pth', weights_only=False)
    assert 'loss_scaler' in saved['optimizer']
