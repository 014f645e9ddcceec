"""The recipe: which distillation terms suit a teacher-student pair.

:func:`read_model` reads a built model's family (:mod:`.facts`),
:func:`recommend` picks the terms with a reason each and lists those left
out (:mod:`.rules`), citing the digits benchmark rows of :mod:`.evidence`.
``tools/recipe.py`` writes the result as a distill config.
"""
from .evidence import EVIDENCE, Evidence, evidence
from .facts import (DecodeHeadFacts, DenseHeadFacts, Level, ModelFacts,
                    RoIHeadFacts, read_model)
from .rules import LeftOut, PickedTerm, Recipe, describe, recommend

__all__ = ['EVIDENCE', 'Evidence', 'evidence', 'DecodeHeadFacts',
           'DenseHeadFacts', 'Level', 'ModelFacts', 'RoIHeadFacts',
           'read_model', 'LeftOut', 'PickedTerm', 'Recipe', 'describe',
           'recommend']
