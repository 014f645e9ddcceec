"""DensePredictions.select: the rows of a mask, gradients as masked."""
import pytest
import torch
from fake_dense_preds import fake_preds


def test_select_keeps_the_rows_of_the_mask_and_their_gradient():
    cls = torch.arange(8.).reshape(4, 2).requires_grad_()
    preds = fake_preds(cls, labels=torch.tensor([0, 2, 1, 2]),
                       priors=torch.arange(16.).reshape(4, 4))
    preds.cache['x'] = 1
    rows = preds.select(preds.pos)
    assert rows.cls_student.tolist() == [[0., 1.], [4., 5.]]
    assert rows.priors.tolist() == [list(range(4)), list(range(8, 12))]
    assert rows.labels.tolist() == [0, 1] and bool(rows.pos.all())
    assert rows.cache == {} and preds.cache == {'x': 1}
    assert rows.num_images == preds.num_images
    (rows.cls_student * torch.tensor([1., 2.])).sum().backward()
    assert cls.grad.tolist() == [[1., 2.], [0., 0.], [1., 2.], [0., 0.]]


def test_select_nothing_is_empty_and_still_connected():
    cls = torch.ones(3, 2, requires_grad=True)
    rows = fake_preds(cls).select(torch.zeros(3, dtype=torch.bool))
    assert rows.cls_student.shape == (0, 2)
    rows.cls_student.sum().backward()
    assert cls.grad.abs().sum() == 0


@pytest.mark.parametrize('mask', [torch.ones(3), torch.ones(4).bool()])
def test_select_needs_a_bool_mask_over_the_priors(mask):
    with pytest.raises(ValueError, match='bool mask of shape'):
        fake_preds(torch.zeros(3, 2)).select(mask)
