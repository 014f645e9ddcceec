"""mmkd: knowledge distillation for MMDetection 3.x and MMSegmentation 1.x.

Importing mmkd registers its components in the ``mmkd`` registry scope and
allow-lists the types MMEngine writes into checkpoints, so resuming works
with ``torch.load(weights_only=True)``, and lets MMEngine resolve
``mmkd::`` config paths (the configs shipped in the package).
"""
from mmengine.config.utils import MODULE2PACKAGE

from .utils import allow_mmengine_checkpoint_types

allow_mmengine_checkpoint_types()
# configs name mmkd's shipped configs as 'mmkd::det/ld/<config>.py', as they
# name mmdet's 'mmdet::...' (setup.py puts them under mmkd/.mim/configs)
MODULE2PACKAGE.setdefault('mmkd', 'mmkd')

from . import adaptors, discriminators, distillers  # noqa: E402,F401
from . import hooks, losses, masks, optim, transforms  # noqa: E402,F401
from .distillers import Distiller  # noqa: E402
from .losses import FeatureImitation, PixelwiseKD  # noqa: E402

__version__ = '0.1.0'
__all__ = ['Distiller', 'FeatureImitation', 'PixelwiseKD', '__version__']
