"""Helpers shared by the tests of trainable slots (peers, auxiliary heads,
ONE's branches, NetAug's wide model)."""
import importlib.util
import os.path as osp
from types import ModuleType
from typing import Callable, Set

import torch
from conftest import REPO

from mmkd.distillers.probe import make_probe_batch


def random_batch(model, size: int, seed: int = 3):
    """Random normalised inputs and the probe's ground truth, seeded."""
    torch.manual_seed(seed)
    inputs, samples = make_probe_batch(model.student, (size, size))
    return torch.randn_like(inputs), samples


def grad_owners(model, loss: torch.Tensor,
                owner: Callable[[str], str]) -> Set[str]:
    """The parts (``owner(parameter name)``) of ``model`` that receive a
    non-zero gradient from ``loss``."""
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {owner(name) for name, param in model.named_parameters()
            if param.grad is not None and bool(param.grad.abs().sum() > 0)}


def extract_tool() -> ModuleType:
    """``tools/extract_student.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        'extract_student', osp.join(REPO, 'tools', 'extract_student.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool
