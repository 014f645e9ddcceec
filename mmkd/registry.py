"""Registries of mmkd, children of MMEngine's root registries.

Models, terms, adaptors, masks and discriminators are registered in
:data:`MODELS`, hooks in :data:`HOOKS`, optimizer-wrapper constructors in
:data:`OPTIM_WRAPPER_CONSTRUCTORS`, DDP wrappers in :data:`MODEL_WRAPPERS`,
data transforms in :data:`TRANSFORMS`, all under the scope ``mmkd``.
``locations`` lets MMEngine import the modules that register them on first
use, so ``type='mmkd.Distiller'`` builds from any MMDetection or
MMSegmentation config, with or without ``custom_imports``.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmkd',
    locations=['mmkd.distillers', 'mmkd.losses', 'mmkd.adaptors',
               'mmkd.masks', 'mmkd.discriminators'])

HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmkd', locations=['mmkd.hooks'])

OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmkd',
    locations=['mmkd.optim'])

MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    scope='mmkd',
    locations=['mmkd.distillers'])

TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    scope='mmkd',
    locations=['mmkd.transforms'])
