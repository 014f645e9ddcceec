from .base import DistillTerm
from .feature import FeatureImitation, weighted_squared_error
from .head_response import (BackgroundWeightedSoftTargets,
                            HeadClassificationKD)
from .localization import LocalizationDistillation, TeacherBoundedRegression
from .response import PixelwiseKD, pixelwise_kl_divergence

__all__ = ['DistillTerm', 'FeatureImitation', 'PixelwiseKD',
           'weighted_squared_error', 'pixelwise_kl_divergence',
           'BackgroundWeightedSoftTargets', 'HeadClassificationKD',
           'LocalizationDistillation', 'TeacherBoundedRegression']
