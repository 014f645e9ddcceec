"""The README's main job, shrunk: a few images and iterations."""
import json

from digits_coco import CLASSES, generate


def test_generated_coco_set_is_consistent(tmp_path):
    files = generate(str(tmp_path), num_train=6, num_val=3, seed=1)
    train = json.load(open(files['train']))
    assert len(train['images']) == 6
    assert [c['name'] for c in train['categories']] == list(CLASSES)
    for ann in train['annotations']:
        x, y, w, h = ann['bbox']
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128
        assert 1 <= w and 1 <= h and 0 <= ann['category_id'] <= 9
    per_image = {}
    for ann in train['annotations']:
        per_image.setdefault(ann['image_id'], []).append(ann)
    assert all(1 <= len(v) <= 5 for v in per_image.values())


def test_demo_runs_end_to_end(tmp_path):
    from digits_kd_demo import format_table, run
    results = run(str(tmp_path), teacher_iters=2, student_iters=2, seed=0,
                  num_train=8, num_val=4)
    assert list(results) == ['teacher', 'student', 'student + KD']
    for r in results.values():
        assert 0 <= r['AP'] <= 1 and 0 <= r['AP50'] <= 1
    # the distilled student deploys with the student's parameter count
    assert results['student']['params'] == results['student + KD']['params']
    assert results['teacher']['params'] > 3 * results['student']['params']
    assert 'student + KD' in format_table(results)
