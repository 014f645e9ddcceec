# The det recipe with the teacher's records cached per image
# (cache_outputs=True, mmkd.distillers.teacher_cache): the digits pipeline is
# deterministic, so the teacher runs in the first epoch only and the same
# terms train on the same records at a lower cost per step.
_base_ = './recipe_digits_gfl_r18w32_r18w16.py'

model = dict(teacher=dict(cache_outputs=True))
