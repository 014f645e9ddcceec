"""Suggestions for misspelt names in error messages."""
import difflib
from typing import Iterable, List


def nearest_names(name: str, candidates: Iterable[str],
                  n: int = 5) -> List[str]:
    """Return up to ``n`` candidates that look most like ``name``.

    Close spellings come first (``difflib``); when none is close, names
    sharing the longest dotted prefix with ``name`` are offered instead, so
    ``neck.fpn_conv.9`` still suggests ``neck.fpn_convs.0``...
    """
    candidates = list(candidates)
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    if close:
        return close
    parts = name.split('.')
    for depth in range(len(parts) - 1, -1, -1):
        prefix = '.'.join(parts[:depth])
        siblings = [
            c for c in candidates
            if (c.startswith(prefix + '.') if prefix else '.' not in c)
            and c.count('.') == depth
        ]
        if siblings:
            return sorted(siblings)[:n]
    return sorted(candidates)[:n]
