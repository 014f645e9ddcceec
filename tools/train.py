"""Train a model (a distiller or any plain mmdet/mmseg model) with MMEngine.

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--cfg-options key=value ...] [--launcher pytorch]
"""
import argparse
import os.path as osp
import sys
from typing import Optional

from mmengine.config import Config
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import mmkd  # noqa: E402,F401  (registers mmkd and safe checkpoint types)
from mmkd.optim import enable_amp  # noqa: E402
from mmkd.utils.annotations import annotation_errors_named  # noqa: E402
from mmkd.utils.cli import add_runner_args, load_runner_config  # noqa: E402
from mmkd.utils.resume import (check_resume_checkpoint,  # noqa: E402
                               latest_checkpoint)

FINITE_CHECKPOINTS = 'mmkd.FiniteCheckpointHook'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic mixed precision training')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work dir when no path is given')
    add_runner_args(parser)
    return parser.parse_args()


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_runner_config(args)
    prepare_training(cfg, amp=args.amp, resume=args.resume)
    return cfg


def prepare_training(cfg: Config, amp: bool = False,
                     resume: Optional[str] = None) -> None:
    """Apply ``--amp`` and ``--resume`` to ``cfg`` and guard its
    checkpoints (``mmkd.FiniteCheckpointHook``), in place.

    Args:
        cfg: a runner config whose ``work_dir`` is set.
        amp: turn every optimizer wrapper into ``AmpOptimWrapper``.
        resume: ``None`` (train from the start), ``'auto'`` (the latest
            checkpoint of the work dir, if any) or a checkpoint path.

    Raises:
        SystemExit: the checkpoint to resume from is missing or does not
            load; the message names it and a good one to use instead.
    """
    if amp and not enable_amp(cfg.optim_wrapper):
        # every wrapper, also each of an OptimWrapperDict config
        print('AMP is already enabled in the config.')
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
        latest = latest_checkpoint(cfg.work_dir)
        if latest is not None:
            check_resume_checkpoint(
                latest, f'the latest, named in '
                f'{osp.join(cfg.work_dir, "last_checkpoint")}')
    elif resume is not None:
        if not osp.isfile(resume):
            raise SystemExit(f'Checkpoint to resume from not found: '
                             f'{resume}')
        check_resume_checkpoint(resume, 'given to --resume')
        cfg.resume = True
        cfg.load_from = resume
    add_finite_checkpoint_hook(cfg)


def add_finite_checkpoint_hook(cfg: Config) -> None:
    """Never save NaN/inf weights (``mmkd.FiniteCheckpointHook``)."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') in (FINITE_CHECKPOINTS, 'FiniteCheckpointHook')
               for h in hooks):
        hooks.append(dict(type=FINITE_CHECKPOINTS))
    cfg.custom_hooks = hooks


def build_runner(cfg: Config) -> Runner:
    """The config's ``runner_type`` (from MMEngine's ``RUNNERS``) or
    MMEngine's ``Runner``, built from ``cfg`` (the model included)."""
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def main() -> None:
    cfg = build_config(parse_args())
    with annotation_errors_named(cfg):
        build_runner(cfg).train()


if __name__ == '__main__':
    main()
