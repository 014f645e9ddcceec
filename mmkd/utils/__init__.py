from .checkpoint import (allow_mmengine_checkpoint_types, is_url,
                         load_state_dict_file, load_teacher_weights)
from .names import nearest_names

__all__ = ['allow_mmengine_checkpoint_types', 'is_url', 'load_state_dict_file',
           'load_teacher_weights', 'nearest_names']
