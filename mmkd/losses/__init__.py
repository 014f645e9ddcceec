from .adversarial import (AdversarialTerm, HolisticAdversarialKD,
                          gradient_penalty, wgan_gp_discriminator_loss)
from .activation_boundary import (ActivationBoundaryKD,
                                  activation_boundary_loss)
from .attention import AttentionTransfer, attention_transfer_loss
from .base import DistillTerm
from .channel_wise import ChannelWiseKD, channel_wise_divergence
from .cross_head import CrossHeadKD
from .decoupled_kd import DecoupledHeadKD
from .dense_head_term import DenseHeadTerm
from .detr_matching import HungarianMatchingKD
from .detr_points import ConsistentPointsKD
from .detr_query_group import QueryPriorAssignmentKD
from .detr_target_aware import TargetAwareFeatureKD
from .dist import DISTKD, dist_loss
from .factor_transfer import FactorTransfer
from .feature import FeatureImitation, weighted_squared_error
from .fgd import FocalGlobalKD, GlobalContextRelation
from .fsp import FlowOfSolutionKD, fsp_loss, fsp_matrix
from .head_response import (BackgroundWeightedSoftTargets,
                            BinaryClassificationKD, HeadClassificationKD)
from .localization import (IoULocalizationKD, LocalizationDistillation,
                           TeacherBoundedRegression)
from .mgd import MaskedGenerativeKD
from .neuron_selectivity import (NeuronSelectivityTransfer,
                                 neuron_selectivity_loss)
from .pairwise import (PairwiseAffinityKD, cosine_affinity,
                       pairwise_affinity_loss)
from .pearson import PearsonFeatureKD, pearson_feature_loss
from .relational import (RelationalKD, rkd_angle_loss,
                         rkd_distance_loss)
from .response import (PixelwiseKD, class_balanced_mean,
                       pixelwise_kl_divergence, pixelwise_kl_map)
from .roi_head import (RoIBackgroundWeightedSoftTargets,
                       RoITeacherBoundedRegression)
from .roi_head_term import RoIHeadTerm

__all__ = ['ActivationBoundaryKD', 'activation_boundary_loss',
           'AttentionTransfer', 'attention_transfer_loss',
           'NeuronSelectivityTransfer', 'neuron_selectivity_loss',
           'DistillTerm', 'DenseHeadTerm', 'RoIHeadTerm', 'FeatureImitation', 'PixelwiseKD',
           'weighted_squared_error', 'pixelwise_kl_divergence',
           'pixelwise_kl_map', 'class_balanced_mean',
           'BackgroundWeightedSoftTargets', 'BinaryClassificationKD',
           'CrossHeadKD', 'DecoupledHeadKD',
           'HeadClassificationKD', 'IoULocalizationKD',
           'LocalizationDistillation', 'TeacherBoundedRegression',
           'ChannelWiseKD', 'channel_wise_divergence',
           'DISTKD', 'dist_loss', 'HungarianMatchingKD', 'ConsistentPointsKD',
           'QueryPriorAssignmentKD', 'TargetAwareFeatureKD', 'FactorTransfer',
           'PearsonFeatureKD',
           'pearson_feature_loss', 'FocalGlobalKD',
           'GlobalContextRelation', 'MaskedGenerativeKD',
           'AdversarialTerm', 'HolisticAdversarialKD', 'gradient_penalty',
           'wgan_gp_discriminator_loss', 'PairwiseAffinityKD',
           'cosine_affinity', 'pairwise_affinity_loss',
           'RoIBackgroundWeightedSoftTargets', 'RoITeacherBoundedRegression',
           'FlowOfSolutionKD', 'fsp_loss', 'fsp_matrix', 'RelationalKD',
           'rkd_angle_loss', 'rkd_distance_loss']
