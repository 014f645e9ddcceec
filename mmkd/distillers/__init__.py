from .adversarial_ddp import AdversarialDistillerDDP
from .distiller import Distiller

__all__ = ['AdversarialDistillerDDP', 'Distiller']
