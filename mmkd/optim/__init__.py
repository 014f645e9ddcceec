from .adversarial_constructor import (AdversarialOptimWrapperConstructor,
                                      enable_amp,
                                      uses_adversarial_constructor)

__all__ = [
    'AdversarialOptimWrapperConstructor', 'enable_amp',
    'uses_adversarial_constructor'
]
