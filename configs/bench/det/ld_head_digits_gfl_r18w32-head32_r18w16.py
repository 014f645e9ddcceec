# LD on the digits benchmark, the same recipe as
# ld_head_digits_gfl_r18w32_r18w16.py, from CrossKD's teacher (head width
# 32, see crosskd_head_digits_gfl_r18w32-head32_r18w16.py): LD on the same
# teacher, for a fair comparison.
# tools/benchmark/accuracy.py fills in the teacher checkpoint it trains.
_base_ = './ld_head_digits_gfl_r18w32_r18w16.py'

model = dict(
    teacher=dict(
        config='{{ fileDirname }}/../_base_/digits_gfl_r18w32-head32.py',
        checkpoint='work_dirs/bench/det_samehead_teacher.pth'))
