"""What the exporter and every engine share: the exported model's input names and the engine
error."""
from typing import List, Sequence

# the exported model's inputs: ``slow_input [N,3,T/alpha,S,S]``, ``fast_input [N,3,T,S,S]``
INPUT_NAMES = ("slow_input", "fast_input")


class EngineError(RuntimeError):
    """A model file that cannot be loaded or options this machine cannot honour."""


def slow_fast_order(names: Sequence[str]) -> List[str]:
    """The model's input names as ``[slow, fast]``: by name when the model uses this project's
    names (``slow_input``, ``fast_input``), else in the model's own order."""
    if set(INPUT_NAMES) <= set(names):
        return list(INPUT_NAMES)
    return list(names)
