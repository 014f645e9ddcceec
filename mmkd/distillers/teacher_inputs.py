"""Re-normalise the student's inputs for a teacher that expects others.

The batch goes through the *student's* data preprocessor once. A teacher
trained with another normalisation (caffe-style mean/std, BGR instead of
RGB) would silently see wrong inputs, so when the two preprocessors differ
the distiller maps ``x_s`` back to pixels and into the teacher's space:
``x_t = (flip(x_s · std_s + mean_s) − mean_t) / std_t``. Padding is mapped
like any pixel (the student pads after normalising).
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn

Normalization = Tuple[torch.Tensor, torch.Tensor, bool]


# MMEngine's ImgDataPreprocessor (and so mmdet's) names the channel flip
# ``_channel_conversion``; mmseg's SegDataPreProcessor ``channel_conversion``
_CHANNEL_CONVERSION_ATTRS = ('_channel_conversion', 'channel_conversion')


def _normalization(preprocessor: nn.Module) -> Optional[Normalization]:
    """(mean, std, channel flip) of an mmengine/mmdet/mmseg image data
    preprocessor, or ``None`` for one of another kind."""
    flip = next((getattr(preprocessor, name)
                 for name in _CHANNEL_CONVERSION_ATTRS
                 if hasattr(preprocessor, name)), None)
    if flip is None:
        return None
    if getattr(preprocessor, '_enable_normalize', False):
        mean = preprocessor.mean.detach().float().view(-1)
        std = preprocessor.std.detach().float().view(-1)
    else:
        mean, std = torch.zeros(3), torch.ones(3)
    return mean, std, bool(flip)


class TeacherInputConverter(nn.Module):
    """Affine map (plus channel flip) from student to teacher inputs.

    Args:
        student: normalisation the inputs carry.
        teacher: normalisation the teacher was trained with.
    """

    def __init__(self, student: Normalization,
                 teacher: Normalization) -> None:
        super().__init__()
        (s_mean, s_std, s_rgb), (t_mean, t_std, t_rgb) = student, teacher
        self.flip = s_rgb != t_rgb
        if self.flip:  # channels of the raw image in the teacher's order
            s_mean, s_std = s_mean.flip(0), s_std.flip(0)
        # x_t = x_s * scale + shift, per channel
        scale = s_std / t_std
        shift = (s_mean - t_mean) / t_std
        self.register_buffer('scale', scale.view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer('shift', shift.view(1, -1, 1, 1),
                             persistent=False)

    @classmethod
    def between(cls, student_preprocessor: nn.Module,
                teacher_preprocessor: nn.Module
                ) -> Optional['TeacherInputConverter']:
        """A converter, or ``None`` when none is needed (or knowable)."""
        student = _normalization(student_preprocessor)
        teacher = _normalization(teacher_preprocessor)
        if student is None or teacher is None:
            return None
        if student[2] == teacher[2] and torch.equal(student[0], teacher[0]) \
                and torch.equal(student[1], teacher[1]):
            return None
        return cls(student, teacher)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.flip:
            inputs = inputs.flip(1)
        return inputs * self.scale.to(inputs.dtype) + \
            self.shift.to(inputs.dtype)
