"""Multi-GPU training of a distiller with adversarial terms.

MMEngine's ``MMDistributedDataParallel.train_step`` drives one optimizer
and ``MMSeparateDistributedDataParallel`` wraps each child of the model in
its own DDP (the distiller calls ``student.loss`` and its terms directly,
which a DDP wrapper does not expose). :class:`AdversarialDistillerDDP`
keeps one DDP over the distiller for the student's step and leaves the
discriminators out of it:

- the student, its adaptors and every other trainable parameter are
  averaged by DDP during the student's backward pass, the forward pass
  going through DDP as usual (``find_unused_parameters=False`` works: the
  teacher is no submodule and the discriminators are ignored);
- the discriminators are broadcast from rank 0 when wrapped and their
  gradients averaged over ranks explicitly in each discriminator update.

Set it in the config (it is only used when training on several GPUs)::

    model_wrapper_cfg = dict(type='mmkd.AdversarialDistillerDDP')
"""
from typing import Dict, List, Union

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch.nn.parallel import DistributedDataParallel

from ..registry import MODEL_WRAPPERS
from .adversarial_step import adversarial_train_step


def _discriminator_names(module: nn.Module) -> List[str]:
    """Qualified names of the discriminators' parameters and buffers."""
    prefixes = [f'distill_terms.{name}.discriminator.'
                for name in module.adversarial_terms()]
    names = [name for name, _ in module.named_parameters()] + \
        [name for name, _ in module.named_buffers()]
    return [n for n in names if n.startswith(tuple(prefixes))]


def average_gradients(module: nn.Module) -> None:
    """All-reduce the gradients of ``module`` to their mean over ranks."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads or not dist.is_initialized():
        return
    world = dist.get_world_size()
    for grad in grads:
        dist.all_reduce(grad)
        grad.div_(world)


@MODEL_WRAPPERS.register_module()
class AdversarialDistillerDDP(MMDistributedDataParallel):
    """DDP for a :class:`~mmkd.Distiller` whose terms own discriminators.

    Args:
        module: the distiller.
        **kwargs: :class:`torch.nn.parallel.DistributedDataParallel`'s
            arguments (``broadcast_buffers``, ``find_unused_parameters``,
            ...).

    Without adversarial terms it is MMEngine's ``MMDistributedDataParallel``.

    Examples:
        >>> model_wrapper_cfg = dict(type='mmkd.AdversarialDistillerDDP',
        ...                          broadcast_buffers=False)
    """

    def __init__(self, module: nn.Module, **kwargs) -> None:
        ignored = _discriminator_names(module)
        if ignored:
            DistributedDataParallel.\
                _set_params_and_buffers_to_ignore_for_model(module, ignored)
        super().__init__(module=module, **kwargs)
        with torch.no_grad():
            for term in module.adversarial_terms().values():
                for tensor in list(term.discriminator.parameters()) + \
                        list(term.discriminator.buffers()):
                    dist.broadcast(tensor, src=0)

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict]
                   ) -> Dict[str, torch.Tensor]:
        if not self.module.adversarial_terms():
            return super().train_step(data, optim_wrapper)
        return adversarial_train_step(
            self.module, data, optim_wrapper, ddp=self,
            reduce_gradients=average_gradients)
