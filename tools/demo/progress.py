"""A console progress line for MMEngine training loops, and loss records.

MMEngine's own ``LoggerHook`` prints iteration lines only at INFO level,
together with the environment report and the full config; the demo and the
benchmark run at WARNING level and print their own short lines instead.
The hook is registered on a built runner (``runner.register_hook``), never
in a registry, so importing this module changes no global state.
"""
import time
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f'{hours}:{minutes:02d}:{seconds:02d}' if hours else \
        f'{minutes}:{seconds:02d}'


class ProgressHook(Hook):
    """Prints ``iteration/total, s/iter, ETA, loss`` every ``interval``
    iterations and records the losses of every iteration.

    Args:
        name (str): What is training, printed at the start of each line.
        interval (int): Print every ``interval`` iterations (and the last).
            Defaults to 50.
        stream (callable, optional): Where lines go. Defaults to ``print``
            with ``flush=True``.

    Attributes:
        losses (dict[str, list[float]]): Every logged loss (``loss`` and
            each ``loss_*`` term) at every iteration.
        seconds (float): Wall time of the training loop, data included.

    Examples:
        >>> runner = Runner.from_cfg(cfg)
        >>> progress = ProgressHook('student', interval=100)
        >>> runner.register_hook(progress, priority='LOW')
        >>> runner.train()
    """

    priority = 'LOW'

    def __init__(self, name: str, interval: int = 50,
                 stream: Optional[callable] = None) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}.')
        self.name = name
        self.interval = interval
        self.stream = stream or (lambda line: print(line, flush=True))
        self.losses: Dict[str, List[float]] = {}
        self.seconds = 0.0
        self._start = 0.0

    def before_train(self, runner) -> None:
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        for key, value in (outputs or {}).items():
            if key.startswith('loss'):
                if isinstance(value, torch.Tensor):
                    value = value.detach()
                self.losses.setdefault(key, []).append(float(value))
        done, total = runner.iter + 1, runner.max_iters
        self.seconds = time.perf_counter() - self._start
        if done % self.interval and done != total:
            return
        per_iter = self.seconds / done
        loss = self.losses.get('loss', [float('nan')])[-1]
        self.stream(f'  {self.name}: iter {done}/{total}  '
                    f'{per_iter:.3f} s/iter  '
                    f'ETA {_format_seconds(per_iter * (total - done))}  '
                    f'loss {loss:.4f}')
