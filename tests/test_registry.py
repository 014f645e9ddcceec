from mmengine.registry import MODELS as ROOT
from mmengine.registry import DefaultScope

from mmkd.losses import FeatureImitation


def test_scoped_type_builds_from_an_mmdet_or_mmseg_scope():
    for scope in ('mmdet', 'mmseg'):
        with DefaultScope.overwrite_default_scope(scope):
            term = ROOT.build(dict(type='mmkd.FeatureImitation',
                                   student='neck', teacher='neck'))
        assert isinstance(term, FeatureImitation)


def test_components_are_found_in_the_mmkd_scope():
    from mmkd.registry import MODELS
    for name in ('Distiller', 'FeatureImitation', 'PixelwiseKD',
                 'ConvAdaptor', 'GtBoxMask', 'FGFIMask'):
        assert MODELS.get(name) is not None, name
