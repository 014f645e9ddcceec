"""Initialise a model as MMEngine's Runner does, without downloads."""
import torch.nn as nn


def init_weights_offline(model: nn.Module) -> None:
    """``model.init_weights()``, as the Runner calls it before training,
    without the ``Pretrained`` entries of the modules' ``init_cfg`` (no
    download: for benchmarks and tests on machines without the weights).

    Until then some mmdet parameters are uninitialised memory (DETR's
    ``level_embed`` is ``torch.Tensor(...)``: now and then ~1e33 or NaN),
    so a model built but not initialised must not be trained or timed.
    The ``init_cfg`` edits are kept: call it on a model built for the
    purpose.
    """
    for module in model.modules():
        init_cfg = getattr(module, 'init_cfg', None)
        if isinstance(init_cfg, dict):
            init_cfg = [init_cfg]
        if isinstance(init_cfg, list):
            module.init_cfg = [c for c in init_cfg
                               if c.get('type') != 'Pretrained'] or None
    model.init_weights()
