from .finite_checkpoint import FiniteCheckpointHook

__all__ = ['FiniteCheckpointHook']
