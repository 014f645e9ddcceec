from .adversarial_ddp import AdversarialDistillerDDP
from .auxiliary import AuxiliaryHeads, GatedBranchEnsemble
from .distiller import Distiller
from .network_augmentation import NetworkAugmentation

__all__ = [
    'AdversarialDistillerDDP', 'AuxiliaryHeads', 'Distiller',
    'GatedBranchEnsemble', 'NetworkAugmentation'
]
