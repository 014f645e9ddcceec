"""tools/recipe.py and mmkd.recipe: the terms picked for every digits suite
pair and every model family, the reasons written, and the written config
building and training two iterations."""
import json
import os.path as osp
import sys

import pytest
import torch
from conftest import REPO, init_as_the_runner_does, save_teacher
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope, init_default_scope

from mmkd.distillers.probe import make_probe_batch
from mmkd.distillers.teacher import resolve_config_path
from mmkd.recipe import EVIDENCE, read_model, recommend

sys.path.insert(0, osp.join(REPO, 'tools'))
sys.path.insert(0, osp.join(REPO, 'tests', 'test_distillers'))
import recipe as recipe_tool  # noqa: E402
from test_model_families import FAMILIES, _model_config  # noqa: E402

BASE = osp.join(REPO, 'configs', 'bench', '_base_')

#: teacher, student, the term types, the left-out method and its reason
DIGITS_PAIRS = {
    'det': ('digits_gfl_r18w32.py', 'digits_gfl_r18w16.py',
            {'FeatureImitation', 'LocalizationDistillation',
             'HeadClassificationKD'},
            ('CrossKD', 'head widths 64 vs 32')),
    'det_samehead': ('digits_gfl_r18w32-head32.py', 'digits_gfl_r18w16.py',
                     {'FeatureImitation', 'LocalizationDistillation',
                      'HeadClassificationKD', 'CrossHeadKD'},
                     ('BCKD', 'det `bckd`: +0.054 AP')),
    'det_atss': ('digits_atss_r18w32.py', 'digits_gfl_r18w16.py',
                 {'PearsonFeatureKD'},
                 ('head terms (LD, class KD, BCKD, CrossKD)',
                  "family 'ATSSHead' vs 'GFLHead'")),
    'det_rcnn': ('digits_faster-rcnn_r18w32.py',
                 'digits_faster-rcnn_r18w16.py',
                 {'FeatureImitation', 'BackgroundWeightedSoftTargets',
                  'TeacherBoundedRegression',
                  'RoIBackgroundWeightedSoftTargets',
                  'RoITeacherBoundedRegression'},
                 ('FGD', 'det `fgd`: +0.041 AP')),
    'seg': ('digits_fcn_r18w32-d8.py', 'digits_fcn_r18w16-d8.py',
            {'ChannelWiseKD', 'DISTKD'},
            ('AT / NST / FSP', 'seg `at`: -6.7 mIoU')),
}


@pytest.fixture(autouse=True)
def one_thread(no_leftover_scope):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _saved_teacher(config: str, tmp_path) -> str:
    cfg = Config.fromfile(resolve_config_path(config))
    return save_teacher(cfg.model, str(tmp_path / 'teacher.pth'),
                        cfg.default_scope)


def _train_two_iterations(path: str, size=(64, 64)) -> dict:
    """Build the written config's distiller and take two SGD steps on a
    random batch; the last loss dict."""
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    init_as_the_runner_does(model)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    torch.manual_seed(0)
    for _ in range(2):
        # a fresh batch each step: heads convert their ground truth in place
        inputs, samples = make_probe_batch(model.student, size)
        inputs = torch.rand_like(inputs) * 255
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        distill = {k: v for k, v in losses.items() if 'distill' in k}
        assert set(distill) == {f'loss_distill_{n}'
                                for n in model.distill_terms}
        assert all(torch.isfinite(v) for v in distill.values()), distill
        # the distillation gradients first: finite, and reaching the student
        sum(distill.values()).backward(retain_graph=True)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in model.student.parameters())
        task = sum(v if isinstance(v, torch.Tensor) else sum(v)
                   for k, v in losses.items()
                   if 'loss' in k and 'distill' not in k)
        task.backward()
        # some shrunk random students' own losses overflow (DINO's
        # Hungarian-matched class loss on random images): not the terms'
        for param in model.parameters():
            if param.grad is not None:
                param.grad.nan_to_num_(0.0, 0.0, 0.0)
        optimizer.step()
    return losses


@pytest.mark.parametrize('suite', list(DIGITS_PAIRS))
def test_digits_suite_recipe_builds_and_trains(suite, tmp_path):
    teacher, student, types, (method, reason) = DIGITS_PAIRS[suite]
    teacher, student = osp.join(BASE, teacher), osp.join(BASE, student)
    ckpt = _saved_teacher(teacher, tmp_path)
    out = str(tmp_path / 'configs' / 'distill.py')
    recipe = recipe_tool.write_recipe(teacher, student, out, ckpt,
                                      probe_size=(128, 128))
    assert {t.config['type'] for t in recipe.terms} == types
    left_out = {item.method: item.reason for item in recipe.left_out}
    assert reason in left_out[method]
    text = open(out).read()
    # every term and every reason is in the file, the reasons as comments
    for term in recipe.terms:
        assert f'{term.name}=dict(type={term.config["type"]!r}' in text
        first_words = ' '.join(term.why.split()[:4])
        assert f'# {first_words}' in text
    assert '# Terms left out:' in text
    assert f'#   {method}: ' in text
    # the student is the base config, unchanged
    cfg = Config.fromfile(out)
    expected = Config.fromfile(student).model.to_dict()
    assert cfg.model.student.to_dict() == expected
    assert cfg.model.teacher.checkpoint == ckpt
    assert osp.samefile(cfg.model.teacher.config, teacher)
    _train_two_iterations(out, (128, 128))


def _family_config(name: str, tmp_path) -> str:
    family = FAMILIES[name]
    path = str(tmp_path / f'{name}.py')
    Config(dict(default_scope=family.scope,
                model=_model_config(family).to_dict())).dump(path)
    return path


#: per family (teacher = the same shrunk model): the terms picked
FAMILY_TERMS = {
    'retinanet': {'FeatureImitation', 'BinaryClassificationKD',
                  'IoULocalizationKD', 'CrossHeadKD'},
    'fcos': {'FeatureImitation', 'BinaryClassificationKD',
             'IoULocalizationKD', 'CrossHeadKD'},
    'atss': {'FeatureImitation', 'BinaryClassificationKD',
             'IoULocalizationKD', 'CrossHeadKD'},
    'gfl': {'FeatureImitation', 'LocalizationDistillation',
            'HeadClassificationKD', 'CrossHeadKD'},
    'faster_rcnn': {'FeatureImitation', 'BackgroundWeightedSoftTargets',
                    'TeacherBoundedRegression',
                    'RoIBackgroundWeightedSoftTargets',
                    'RoITeacherBoundedRegression'},
    'fast_rcnn': {'FeatureImitation', 'RoIBackgroundWeightedSoftTargets',
                  'RoITeacherBoundedRegression'},
    'mask_rcnn': {'FeatureImitation', 'BackgroundWeightedSoftTargets',
                  'TeacherBoundedRegression',
                  'RoIBackgroundWeightedSoftTargets',
                  'RoITeacherBoundedRegression'},
    'panoptic_fpn': {'FeatureImitation', 'BackgroundWeightedSoftTargets',
                     'TeacherBoundedRegression',
                     'RoIBackgroundWeightedSoftTargets',
                     'RoITeacherBoundedRegression'},
    # cascade box heads: no R-CNN terms, the RPN's
    'htc': {'FeatureImitation', 'BackgroundWeightedSoftTargets',
            'TeacherBoundedRegression'},
    'solov2': {'FeatureImitation'},
    'mask2former_panoptic': {'FeatureImitation'},
    'rtmdet': {'FeatureImitation'},
    'rtmdet_ins': {'FeatureImitation'},
    'yolox': {'FeatureImitation'},
    'detr': {'FeatureImitation'},
    'dino': {'FeatureImitation'},
    'deformable_detr': {'FeatureImitation'},
    'deformable_detr_two_stage': {'FeatureImitation'},
    'conditional_detr': {'FeatureImitation'},
    'dab_detr': {'FeatureImitation'},
    'pspnet': {'ChannelWiseKD', 'DISTKD'},
    'depth': {'FeatureImitation'},
    'segformer': {'ChannelWiseKD', 'DISTKD'},
}


def test_every_family_has_an_expectation():
    assert set(FAMILY_TERMS) == set(FAMILIES)


@pytest.mark.parametrize('name', list(FAMILY_TERMS))
def test_family_recipe_builds_and_trains(name, tmp_path):
    family = FAMILIES[name]
    path = _family_config(name, tmp_path)
    with DefaultScope.overwrite_default_scope(family.scope):
        ckpt = save_teacher(_model_config(family), str(tmp_path / 't.pth'),
                            family.scope)
    out = str(tmp_path / 'distill.py')
    recipe = recipe_tool.write_recipe(path, path, out, ckpt,
                                      probe_size=(64, 64))
    assert {t.config['type'] for t in recipe.terms} == FAMILY_TERMS[name]
    text = open(out).read()
    for item in recipe.left_out:
        assert item.method in text
    if 'detr' in name or name == 'dino':
        detr = [item for item in recipe.left_out
                if item.method == 'DETR-family terms']
        # every registered DETR-family term is named, query-level or not
        assert len(detr) == 1 and all(term in detr[0].reason for term in (
            'HungarianMatchingKD', 'QueryPriorAssignmentKD',
            'ConsistentPointsKD', 'TargetAwareFeatureKD'))
    if name == 'htc':
        assert any('cascade' in item.reason for item in recipe.left_out)
    _train_two_iterations(out)


def _facts(name: str, **overrides):
    family = FAMILIES[name]
    cfg = Config(dict(model=_model_config(family)))
    cfg.merge_from_dict({f'model.{k}': v for k, v in overrides.items()})
    cfg = cfg.model
    with DefaultScope.overwrite_default_scope(family.scope):
        model = MODELS.build(cfg)
    return read_model(model, (256, 256))


def _digits_facts(name: str):
    cfg = Config.fromfile(osp.join(BASE, name))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return read_model(MODELS.build(cfg.model), (128, 128))


def test_heterogeneous_dense_heads_get_pkd_on_the_neck():
    recipe = recommend(_facts('retinanet'), _facts('gfl'))
    assert [t.config['type'] for t in recipe.terms] == ['PearsonFeatureKD']
    reasons = ' '.join(str(item) for item in recipe.left_out)
    assert "family 'AnchorHead' vs 'GFLHead'" in reasons


def test_two_stage_teacher_one_stage_student_reads_the_neck_only():
    recipe = recommend(_digits_facts('digits_faster-rcnn_r18w32.py'),
                       _digits_facts('digits_gfl_r18w16.py'))
    assert [t.config['type'] for t in recipe.terms] == ['PearsonFeatureKD']
    assert any('two_stage FasterRCNN, the student a dense GFL' in
               item.reason for item in recipe.left_out)
    # mmdet's Faster R-CNN (P2-P6) and RetinaNet (P3-P7) share no levels
    with pytest.raises(ValueError, match='strides 4/8/16/32/64, student '
                       '8/16/32/64/128'):
        recommend(_facts('faster_rcnn'), _facts('retinanet'))


def test_crosskd_left_out_when_the_head_widths_differ():
    # two stacked convs: CrossKD would reuse the teacher's second conv,
    # which reads 64 channels
    teacher = _facts('gfl', **{'bbox_head.feat_channels': 64,
                               'bbox_head.stacked_convs': 2})
    recipe = recommend(teacher, _facts('gfl', **{'bbox_head.stacked_convs':
                                                 2}))
    assert 'CrossHeadKD' not in {t.config['type'] for t in recipe.terms}
    assert 'LocalizationDistillation' in {t.config['type']
                                          for t in recipe.terms}
    assert any(str(item).startswith('CrossKD: head widths 64 vs 32')
               for item in recipe.left_out)
    # one stacked conv: it reuses the teacher's head from its input, which
    # has the student's width (32)
    teacher = _facts('gfl', **{'bbox_head.feat_channels': 64})
    recipe = recommend(teacher, _facts('gfl'))
    cross = [t for t in recipe.terms if t.config['type'] == 'CrossHeadKD']
    assert [t.config['reuse_index'] for t in cross] == [0]


def test_facts_read_the_widths_strides_and_layout():
    facts = _facts('gfl')
    assert (facts.task, facts.kind, facts.arch) == ('det', 'dense', 'GFL')
    assert facts.place == 'neck'
    assert facts.widths == (32, ) * 5
    assert [s[0] for s in facts.strides] == [8, 16, 32, 64, 128]
    head = facts.dense_head
    assert (head.family, head.feat_channels, head.stacked_convs) == \
        ('GFLHead', 32, 1)
    assert head.layout['reg_max'] == 16 and head.layout['class_channels'] \
        == 80
    seg = _facts('pspnet')
    assert (seg.kind, seg.decode_head.classes) == ('segmentor', 19)


def test_pairs_the_recipe_refuses_say_why():
    with pytest.raises(ValueError, match='one task'):
        recommend(_facts('pspnet'), _facts('gfl'))
    with pytest.raises(ValueError, match='150 classes, the student 19'):
        recommend(_facts('segformer'), _facts('pspnet'))
    # DETR (one level at stride 32) vs DINO (four levels)
    with pytest.raises(ValueError, match='No term suits DETR -> DINO'):
        recommend(_facts('detr'), _facts('dino'))


def test_cli_writes_the_config(tmp_path, capsys):
    teacher = osp.join(BASE, 'digits_gfl_r18w32.py')
    student = osp.join(BASE, 'digits_gfl_r18w16.py')
    out = str(tmp_path / 'distill.py')
    recipe_tool.main([teacher, student, '-o', out])
    printed = capsys.readouterr().out
    assert '+ ld (LocalizationDistillation)' in printed
    assert '- CrossKD: head widths 64 vs 32' in printed
    text = open(out).read()
    # no checkpoint given: the config says to fill it in and does not build
    assert 'checkpoint=None' in text and '# fill in the teacher' in text
    cfg = Config.fromfile(out)
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match='teacher.checkpoint is required'):
        MODELS.build(cfg.model)


def test_evidence_matches_the_benchmark_tables():
    """Every number a reason cites is the paired gain of its row in
    docs/benchmarks*.json (a re-run benchmark that moves one fails here)."""
    tables = {}
    for entry in EVIDENCE.values():
        if entry.table not in tables:
            with open(osp.join(REPO, 'docs', f'{entry.table}.json')) as f:
                tables[entry.table] = {(r['suite'], r['method']): r
                                       for r in json.load(f)}
        row = tables[entry.table][(entry.suite, entry.method)]
        gains = [d - s for d, s in zip(row['distilled'], row['student'])]
        assert round(sum(gains) / len(gains), 3) == pytest.approx(
            entry.gain, abs=1e-9), (entry.suite, entry.method)
        assert sum(g > 0 for g in gains) == entry.seeds_up
        assert len(gains) == entry.seeds
