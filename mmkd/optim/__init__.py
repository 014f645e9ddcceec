from .adversarial_constructor import (AdversarialOptimWrapperConstructor,
                                      enable_amp)

__all__ = ['AdversarialOptimWrapperConstructor', 'enable_amp']
