from .checkpoint import (allow_mmengine_checkpoint_types, is_url,
                         load_state_dict_file, load_teacher_weights)
from .names import nearest_names
from .validation import (check_fraction, check_image_size, check_iterations,
                         check_loss_weight, check_positive)

__all__ = ['allow_mmengine_checkpoint_types', 'check_fraction',
           'check_image_size', 'check_iterations', 'check_loss_weight', 'check_positive', 'is_url',
           'load_state_dict_file', 'load_teacher_weights', 'nearest_names']
