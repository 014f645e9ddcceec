"""Head-level distillation: dense-head views and the term base class."""
from .predictions import DensePredictions
from .term import DenseHeadTerm
from .views import (AnchorHeadView, ATSSHeadView, DenseHeadView,
                    FCOSHeadView, GFLHeadView, check_alignment,
                    supported_heads, view_for)

__all__ = ['DensePredictions', 'DenseHeadTerm', 'DenseHeadView',
           'AnchorHeadView', 'ATSSHeadView', 'GFLHeadView', 'FCOSHeadView',
           'check_alignment', 'supported_heads', 'view_for']
