"""Evaluate a checkpoint with MMEngine's test loop (mmdet or mmseg config).

Works for plain mmdet/mmseg configs (e.g. with a checkpoint made by
``tools/extract_student.py``) and for distiller configs, which evaluate
their student.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--cfg-options key=value ...] [--launcher pytorch]
"""
import argparse
import os.path as osp
import sys

from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import mmkd  # noqa: E402,F401
from mmkd.utils.annotations import annotation_errors_named  # noqa: E402
from mmkd.utils.cli import add_runner_args, load_runner_config  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_runner_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'Checkpoint file not found: {args.checkpoint}')
    cfg = load_runner_config(args)
    cfg.load_from = args.checkpoint
    with annotation_errors_named(cfg):
        Runner.from_cfg(cfg).test()


if __name__ == '__main__':
    main()
