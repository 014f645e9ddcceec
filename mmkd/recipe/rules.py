"""Which distillation terms suit a teacher-student pair, and why.

:func:`recommend` reads two :class:`~mmkd.recipe.facts.ModelFacts` and
returns a :class:`Recipe`: the terms picked (each a term config and the
reason) and the terms left out (each with the reason). One small function
per model family decides its part; the rules follow what the seeded
digits benchmarks measured (``docs/benchmarks*.md``, cited in every
reason through :mod:`mmkd.recipe.evidence`):

- **Neck**: when both models read out the same levels (same count and
  strides), plain FPN feature imitation (MSE through 1×1 adaptors, the
  strongest single detection term: ``det`` +0.251 AP) for two models of
  one architecture and head layout; PKD (Cao et al., NeurIPS 2022:
  features standardised per channel, so two architectures' different
  feature scales do not matter) for heterogeneous pairs (``det_atss``
  +0.254 AP, ATSS teacher -> GFL student).
- **Same dense-head family and prior layout**: LD's main and valuable
  localization regions and class KD for GFL heads (Zheng et al., CVPR
  2022; the digits ``ld`` row), BCKD (Yang et al., ICCV 2023) for other
  sigmoid heads; **CrossKD** (Wang et al., CVPR 2024) when the head widths
  match too, so the student's head features can run through the
  teacher's head.
- **Two R-CNNs**: Chen et al. (NeurIPS 2017) complete: the hint on the
  FPN, soft targets with background weight and teacher-bounded regression
  on the RPN and on the R-CNN head (``det_rcnn`` +0.157 AP, its best row).
- **DETRs**: neck imitation only; no DETR-family term (query-level or
  DETRDistill's target-aware features) is measured on a digits suite.
- **Segmentors**: CWD on the class logits (Shu et al., ICCV 2021, τ 4,
  weight 3: ``seg`` +32.3 mIoU) and DIST (Huang et al., NeurIPS 2022:
  +19.3 mIoU) on the same logits.

The weights are those of the single-method benchmark rows (the papers'
defaults): a recipe row of the digits benchmark combines them as they are.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .evidence import evidence
from .facts import DenseHeadFacts, ModelFacts


@dataclass(frozen=True)
class PickedTerm:
    """A term the recipe puts in the config.

    Attributes:
        name: its key in ``distill=dict(...)``.
        config: the term config (``type`` and arguments).
        why: the reason, written above it as a comment.
    """
    name: str
    config: Dict[str, Any]
    why: str


@dataclass(frozen=True)
class LeftOut:
    """A term the recipe considered and left out.

    Attributes:
        method: the method's name (``'CrossKD'``, ``'LD'``...).
        reason: why, e.g. ``'head widths 64 vs 32'``.
    """
    method: str
    reason: str

    def __str__(self) -> str:
        return f'{self.method}: {self.reason}'


@dataclass
class Recipe:
    """The terms for one pair: picked, left out, and notes.

    Attributes:
        teacher: the teacher's facts.
        student: the student's facts.
        terms: the picked terms, in config order.
        left_out: the terms left out, with reasons.
        notes: other remarks for the config's header.
    """
    teacher: ModelFacts
    student: ModelFacts
    terms: List[PickedTerm] = field(default_factory=list)
    left_out: List[LeftOut] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def distill(self) -> Dict[str, Dict[str, Any]]:
        """``{name: term config}``, the Distiller's ``distill`` argument."""
        return {term.name: dict(term.config) for term in self.terms}

    def pick(self, name: str, config: Dict[str, Any], why: str) -> None:
        self.terms.append(PickedTerm(name, config, why))

    def leave_out(self, method: str, reason: str) -> None:
        self.left_out.append(LeftOut(method, reason))


# -- the pieces ---------------------------------------------------------------
def levels_match(teacher: ModelFacts, student: ModelFacts
                 ) -> Optional[str]:
    """None when a neck term can pair the two models' levels one to one,
    else why not."""
    if not teacher.levels or not student.levels:
        return 'the feature levels could not be measured'
    if teacher.place != student.place:
        return (f'the teacher reads out its {teacher.place}, the student '
                f'its {student.place}')
    if teacher.strides != student.strides:
        return (f'{teacher.place} levels differ: teacher strides '
                f'{_strides(teacher)}, student {_strides(student)}; the '
                'terms pair levels one to one')
    return None


def _strides(facts: ModelFacts) -> str:
    return '/'.join(str(s[0]) for s in facts.strides)


def _widths(facts: ModelFacts) -> str:
    return '/'.join(str(w) for w in facts.widths)


def layout_difference(teacher: DenseHeadFacts,
                      student: DenseHeadFacts) -> Optional[str]:
    """None when the heads lay out the same priors (the check of
    :func:`mmkd.heads.views.check_alignment`), else what differs."""
    for side, head in (('teacher', teacher), ('student', student)):
        if head.layout is None:
            return (f'the {side} head {head.type} has no head view '
                    '(head terms read GFLHead, ATSSHead, FCOSHead, '
                    'RetinaHead/AnchorHead)')
    keys = dict(student.layout, **teacher.layout)
    diff = [f'{key} {teacher.layout.get(key)!r} vs '
            f'{student.layout.get(key)!r}' for key in keys
            if teacher.layout.get(key) != student.layout.get(key)]
    return '; '.join(diff) if diff else None


def neck_term(recipe: Recipe, homogeneous: bool,
              hint_weight: float = 1.0, pkd_weight: float = 10.0,
              suite: str = 'det',
              hint: str = 'plain feature imitation') -> None:
    """The neck term: feature imitation (``hint``, at ``hint_weight``)
    for one architecture, PKD (at ``pkd_weight``) for two."""
    teacher, student = recipe.teacher, recipe.student
    problem = levels_match(teacher, student)
    if problem is not None:
        recipe.leave_out('neck imitation / PKD', problem)
        return
    place = student.place
    widths = (f'{place} widths {_widths(student)} -> {_widths(teacher)} '
              'through 1x1 adaptors')
    if homogeneous:
        recipe.pick('fpn', dict(
            type='FeatureImitation', student=place, teacher=place,
            loss_weight=hint_weight),
            f'one architecture, the same {len(student.levels)} {place} '
            f'levels (strides {_strides(student)}): {hint}, {widths}; '
            f'{evidence(suite, "feature_imitation")}')
        recipe.leave_out('PKD / CWD / MGD on the neck', 'a second term on '
                         f'the same {place} levels; each alone below '
                         'feature imitation: '
                         f'{evidence("det", "pkd").gain:+.3f}, '
                         f'{evidence("det", "cwd").gain:+.3f}, '
                         f'{evidence("det", "mgd").gain:+.3f} AP on digits '
                         'det (GFL)')
        recipe.leave_out('FGD', str(evidence('det', 'fgd')))
    else:
        recipe.pick('fpn', dict(
            type='PearsonFeatureKD', student=place, teacher=place,
            adaptor=dict(type='ConvAdaptor'), loss_weight=pkd_weight),
            f'two architectures ({teacher.arch} -> {student.arch}) with '
            f'the same {place} strides {_strides(student)}: PKD '
            'standardises every channel, so their different feature '
            f'scales do not matter; {widths}; '
            f'{evidence("det_atss", "pkd")}')
        recipe.leave_out('feature imitation (MSE)', 'the two '
                         'architectures\' features differ in scale; PKD '
                         'compares them standardised')


def gfl_head_terms(recipe: Recipe, suite: str) -> None:
    """LD (main + valuable regions) and class KD, the digits `ld` row."""
    recipe.pick('ld', dict(
        type='LocalizationDistillation', region='main', temperature=10,
        loss_weight=0.25),
        'both GFL heads lay out the same priors: LD distils the box-edge '
        'distributions in the main region (tau 10, weight 0.25, Zheng 2022)'
        f'; {evidence(suite, "ld")} with the two terms below')
    recipe.pick('ld_vlr', dict(
        type='LocalizationDistillation', region='valuable', temperature=10,
        vlr_low=0.25, loss_weight=0.25),
        'LD in the valuable localization region (negatives near the ATSS '
        'threshold, weight 0.25)')
    recipe.pick('cls_kd', dict(
        type='HeadClassificationKD', region='main', temperature=2,
        loss_weight=10),
        'class KD in the main region (tau 2, weight 10), LD\'s own class '
        'term')
    recipe.leave_out('BCKD', f'{evidence("det", "bckd")}, below LD\'s '
                     'class KD; one class term is enough')
    recipe.leave_out('DKD', f'{evidence("det", "dkd")}')
    recipe.leave_out('bounded regression / soft targets (Chen 2017) on '
                     'the dense head',
                     f'{evidence("det", "bounded_regression")}; '
                     f'{evidence("det", "soft_targets")}')


def sigmoid_head_terms(recipe: Recipe, head: DenseHeadFacts) -> None:
    """BCKD for a non-GFL sigmoid head (LD needs box distributions)."""
    recipe.leave_out('LD', f'the heads are {head.family}s; LD distils '
                     'GFL box distributions')
    if not head.sigmoid:
        recipe.pick('cls_kd', dict(
            type='HeadClassificationKD', region='main', temperature=2,
            loss_weight=10),
            'the same priors, softmax class scores: class KD in the main '
            'region (tau 2, weight 10); unmeasured on this head family')
        recipe.leave_out('BCKD', 'it compares per-class sigmoid scores; '
                         'these heads use a softmax')
        return
    recipe.pick('cls', dict(type='BinaryClassificationKD', beta=1.0,
                            loss_weight=1.0),
                f'the same priors on {head.family}s with sigmoid class '
                'scores: BCKD\'s per-class binary KD (beta 1, Yang 2023); '
                'unmeasured on this head family (on GFL heads: '
                f'{evidence("det", "bckd")})')
    recipe.pick('box', dict(type='IoULocalizationKD', loss_weight=4.0),
                'BCKD\'s GIoU between both models\' decoded boxes '
                '(weight 4)')


def cross_head_term(recipe: Recipe, teacher: DenseHeadFacts,
                    student: DenseHeadFacts, suite: str) -> None:
    """CrossKD when the student's head features fit the teacher's head."""
    if not (teacher.cross_head and teacher.stacked_convs and
            student.stacked_convs):
        recipe.leave_out('CrossKD', f'it cannot run the rest of a '
                         f'{teacher.type}')
        return
    if not (teacher.sigmoid and student.sigmoid):
        recipe.leave_out('CrossKD', 'it compares per-class sigmoid scores')
        return
    # the paper reuses the teacher head from index 3 of 4 stacked convs
    reuse = min(teacher.stacked_convs, student.stacked_convs) - 1
    if reuse >= 1:
        mine, theirs, what = (student.feat_channels, teacher.feat_channels,
                              'head widths')
    else:
        mine, theirs, what = (student.in_channels, teacher.in_channels,
                              'head input widths')
    if mine != theirs:
        recipe.leave_out('CrossKD', f'{what} {theirs} vs {mine} (teacher '
                         'vs student): the student\'s head features cannot '
                         'run through the teacher\'s head')
        return
    recipe.pick('cross', dict(type='CrossHeadKD', reuse_index=reuse),
                f'the head widths match ({mine}): CrossKD runs the '
                f'student\'s head features after stacked conv {reuse} '
                f'through the teacher\'s remaining convs (Wang 2024, the '
                f'paper\'s last conv); {evidence(suite, "crosskd")} alone')


def dense_pair(recipe: Recipe) -> None:
    """Two one-stage dense detectors."""
    t_head, s_head = recipe.teacher.dense_head, recipe.student.dense_head
    diff = layout_difference(t_head, s_head)
    same_arch = recipe.teacher.arch == recipe.student.arch
    neck_term(recipe, homogeneous=diff is None and same_arch)
    if diff is not None:
        recipe.leave_out('head terms (LD, class KD, BCKD, CrossKD)',
                         f'the heads do not lay out the same priors: {diff}')
        return
    same_width = t_head.feat_channels == s_head.feat_channels
    suite = 'det_samehead' if same_width else 'det'
    if t_head.family == 'GFLHead':
        gfl_head_terms(recipe, suite)
    else:
        sigmoid_head_terms(recipe, s_head)
    cross_head_term(recipe, t_head, s_head, 'det_samehead')


def rpn_terms(recipe: Recipe) -> None:
    t_rpn, s_rpn = recipe.teacher.rpn_head, recipe.student.rpn_head
    if t_rpn is None or s_rpn is None:
        side = 'teacher' if t_rpn is None else 'student'
        recipe.leave_out('RPN soft targets / bounded regression',
                         f'the {side} has no RPN')
        return
    diff = layout_difference(t_rpn, s_rpn)
    if diff is not None:
        recipe.leave_out('RPN soft targets / bounded regression',
                         f'the RPNs do not lay out the same anchors: {diff}')
        return
    recipe.pick('rpn_soft', dict(
        type='BackgroundWeightedSoftTargets', head='rpn_head', mu=0.5,
        background_weight=1.5),
        'the RPNs lay out the same anchors: Chen 2017 soft targets, '
        'background weight 1.5, mixed with the hard loss by mu 0.5')
    recipe.pick('rpn_box', dict(
        type='TeacherBoundedRegression', head='rpn_head', margin=0.2,
        loss_weight=0.5),
        'Chen 2017 teacher-bounded regression on the RPN (m 0.2, nu 0.5)')


def roi_terms(recipe: Recipe) -> None:
    t_roi, s_roi = recipe.teacher.roi_head, recipe.student.roi_head
    for side, roi in (('teacher', t_roi), ('student', s_roi)):
        if roi.problem is not None:
            recipe.leave_out('R-CNN soft targets / bounded regression',
                             f'the {side}\'s R-CNN head: {roi.problem}')
            return
    diff = [f'{key} {getattr(t_roi, key)!r} vs {getattr(s_roi, key)!r}'
            for key in ('num_classes', 'coder')
            if getattr(t_roi, key) != getattr(s_roi, key)]
    if diff:
        recipe.leave_out('R-CNN soft targets / bounded regression',
                         'the box heads score RoIs differently: '
                         + '; '.join(diff))
        return
    recipe.pick('rcnn_soft', dict(
        type='RoIBackgroundWeightedSoftTargets', mu=0.5,
        background_weight=1.5),
        'the teacher\'s R-CNN head scores the student\'s sampled RoIs '
        '(same classes and box coder): Chen 2017 soft targets there')
    recipe.pick('rcnn_box', dict(
        type='RoITeacherBoundedRegression', margin=0.2, loss_weight=0.5),
        'Chen 2017 teacher-bounded regression on the positive RoIs; '
        f'the whole Chen 2017 recipe: {evidence("det_rcnn", "chen2017")}, '
        'against '
        f'{evidence("det_rcnn", "soft_targets+bounded_regression").gain:+.3f}'
        ' AP without the hint')


def two_stage_pair(recipe: Recipe) -> None:
    """Two R-CNNs: Chen 2017's hint, RPN and R-CNN terms."""
    same_arch = recipe.teacher.arch == recipe.student.arch
    neck_term(recipe, homogeneous=same_arch, hint_weight=0.5, pkd_weight=6.0,
              suite='det_rcnn', hint='Chen 2017\'s hint (gamma 0.5)')
    rpn_terms(recipe)
    roi_terms(recipe)


#: the base classes (or classes) of the DETR-family terms
DETR_TERM_BASES = ('QueryHeadTerm', 'DecoderQueryTerm', 'TargetAwareFeatureKD')


def registered_detr_terms() -> List[str]:
    """Names of the registered DETR-family terms: those reading query
    heads (``QueryHeadTerm``), those running extra queries through the
    decoders (``DecoderQueryTerm``) and DETRDistill's target-aware
    feature term."""
    from ..registry import MODELS
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and any(
                      base.__name__ in DETR_TERM_BASES
                      for base in cls.__mro__))


def detr_pair(recipe: Recipe) -> None:
    """A DETR on either side: the neck only."""
    same_arch = recipe.teacher.arch == recipe.student.arch
    neck_term(recipe, homogeneous=same_arch)
    detr_terms = registered_detr_terms()
    if detr_terms:
        recipe.leave_out(
            'DETR-family terms',
            f'{", ".join(detr_terms)}: not measured on a digits suite yet '
            '(these CPUs train no usable '
            'digits DETR teacher: docs/evidence.md); add them by hand '
            '(configs/det/detrdistill/, configs/det/kd_detr/)')
    else:
        recipe.leave_out('DETR-family terms', 'not in mmkd yet')
    recipe.notes.append('DETR family: only the neck is distilled.')


def mixed_detectors(recipe: Recipe) -> None:
    """Detectors of different kinds (or heads no view reads)."""
    teacher, student = recipe.teacher, recipe.student
    neck_term(recipe, homogeneous=False,
              pkd_weight=6.0 if student.kind == 'two_stage' else 10.0)
    recipe.leave_out('head terms', f'the teacher is a {teacher.kind} '
                     f'{teacher.arch}, the student a {student.kind} '
                     f'{student.arch}: no head term compares their heads')


def other_detectors(recipe: Recipe) -> None:
    """Two detectors whose heads no head view reads (RTMDet, YOLOX,
    SOLO, MaskFormer...): the neck (or backbone) only."""
    same_arch = recipe.teacher.arch == recipe.student.arch
    neck_term(recipe, homogeneous=same_arch)
    heads = sorted({f.dense_head.type for f in (recipe.teacher,
                                                recipe.student)
                    if f.dense_head is not None} or {recipe.student.arch})
    recipe.leave_out('head terms', f'no head view reads {", ".join(heads)} '
                     '(head terms read GFLHead, ATSSHead, FCOSHead, '
                     'RetinaHead/AnchorHead and R-CNN heads)')


def segmentor_pair(recipe: Recipe) -> None:
    """Two segmentors: CWD and DIST on the class logits."""
    teacher, student = recipe.teacher, recipe.student
    t_dec, s_dec = teacher.decode_head, student.decode_head
    if t_dec is None or s_dec is None or not (t_dec.logits_path and
                                              s_dec.logits_path):
        raise ValueError(
            'The recipe distils segmentors through their decode heads\' '
            'class logits (decode_head.conv_seg); '
            f'{teacher.arch}/{student.arch} give none. Write the distill '
            'config by hand (e.g. ChannelWiseKD on a feature map).')
    if t_dec.classes != s_dec.classes:
        raise ValueError(
            f'The teacher predicts {t_dec.classes} classes, the student '
            f'{s_dec.classes}: the logit terms (CWD, DIST) compare the same'
            ' classes. Give a teacher trained on the student\'s classes.')
    path = s_dec.logits_path
    recipe.pick('logits', dict(
        type='ChannelWiseKD', student=path, teacher=path, temperature=4.0,
        loss_weight=3.0),
        f'both decode heads give {s_dec.classes} class logits: CWD matches'
        ' where each class fires (spatial softmax per class, tau 4, weight'
        f' 3, Shu 2021); {evidence("seg", "cwd")}, the strongest seg term')
    recipe.pick('relations', dict(
        type='DISTKD', student=path, teacher=path, loss_weight=1.0),
        'DIST on the same logits: the ranking of the classes at each '
        f'pixel and of the pixels for each class; {evidence("seg", "dist")}')
    recipe.leave_out('pixel-wise KD / SKD pair-wise / holistic',
                     f'{evidence("seg", "pixel")}; '
                     f'{evidence("seg", "pixel+pair")}; '
                     f'{evidence("seg", "pixel+pair+adversarial")}')
    recipe.leave_out('feature imitation on the decode head',
                     str(evidence('seg', 'feature_imitation')))
    recipe.leave_out('AT / NST / FSP', f'{evidence("seg", "at")}; '
                     f'{evidence("seg", "nst")}; {evidence("seg", "fsp")}')


def depth_pair(recipe: Recipe) -> None:
    """Two depth estimators: no class logits; the backbone (or neck)."""
    neck_term(recipe, homogeneous=recipe.teacher.arch == recipe.student.arch)
    recipe.leave_out('CWD / DIST on logits', 'depth estimators give no '
                     'class logits')
    recipe.notes.append('Depth estimation: no digits suite measured it; '
                        'the term is the detection neck rule.')


def recommend(teacher: ModelFacts, student: ModelFacts) -> Recipe:
    """The distillation terms for ``teacher`` -> ``student``.

    Args:
        teacher: facts of the teacher (:func:`~mmkd.recipe.read_model`).
        student: facts of the student.

    Returns:
        The :class:`Recipe`: picked terms with reasons, terms left out
        with reasons, notes.

    Raises:
        ValueError: the models are of different tasks, or no term suits
            them (the message says why).

    Examples:
        >>> recipe = recommend(read_model(teacher), read_model(student))
        >>> [t.name for t in recipe.terms]
        ['fpn', 'ld', 'ld_vlr', 'cls_kd']
    """
    if teacher.task != student.task or \
            (teacher.kind == 'depth') != (student.kind == 'depth'):
        raise ValueError(
            f'The teacher is a {teacher.kind} ({teacher.arch}), the student '
            f'a {student.kind} ({student.arch}): mmkd distils between '
            'models of one task. Give a teacher of the student\'s task.')
    recipe = Recipe(teacher, student)
    kinds = {teacher.kind, student.kind}
    if kinds == {'segmentor'}:
        segmentor_pair(recipe)
    elif kinds == {'depth'}:
        depth_pair(recipe)
    elif 'detr' in kinds:
        detr_pair(recipe)
    elif kinds == {'two_stage'}:
        two_stage_pair(recipe)
    elif kinds == {'dense'} and teacher.dense_head.family and \
            student.dense_head.family:
        dense_pair(recipe)
    elif len(kinds) == 1:
        other_detectors(recipe)
    else:
        mixed_detectors(recipe)
    if not recipe.terms:
        reasons = '; '.join(str(item) for item in recipe.left_out)
        raise ValueError(
            f'No term suits {teacher.arch} -> {student.arch}: {reasons}. '
            'Write the distill config by hand.')
    return recipe


def describe(recipe: Recipe) -> Tuple[List[str], List[str]]:
    """``(picked, left out)`` one line each, for printing."""
    return ([f'{t.name} ({t.config["type"]}): {t.why}'
             for t in recipe.terms],
            [str(item) for item in recipe.left_out])
