from .distill_switch import DistillSwitchHook
from .finite_checkpoint import FiniteCheckpointHook

__all__ = ['DistillSwitchHook', 'FiniteCheckpointHook']
