"""Registries of mmkd, children of MMEngine's root registries.

Every component is registered in :data:`MODELS` under the scope ``mmkd``.
``locations`` lets MMEngine import the modules that register them on first
use, so ``type='mmkd.Distiller'`` builds from any MMDetection or
MMSegmentation config, with or without ``custom_imports``.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmkd',
    locations=['mmkd.distillers', 'mmkd.losses', 'mmkd.adaptors',
               'mmkd.masks'])
