"""Registries of mmkd, children of MMEngine's root registries.

Models, terms, adaptors and masks are registered in :data:`MODELS`, hooks
in :data:`HOOKS`, all under the scope ``mmkd``.
``locations`` lets MMEngine import the modules that register them on first
use, so ``type='mmkd.Distiller'`` builds from any MMDetection or
MMSegmentation config, with or without ``custom_imports``.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmkd',
    locations=['mmkd.distillers', 'mmkd.losses', 'mmkd.adaptors',
               'mmkd.masks'])

HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmkd', locations=['mmkd.hooks'])
