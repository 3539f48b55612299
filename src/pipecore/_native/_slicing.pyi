# Generated from _slicing.pyx (signatures only); keep in step with the .pyx.
from typing import Any

from numpy.typing import NDArray

def path_levels(order: NDArray[Any], succ_ptr: NDArray[Any], succ_idx: NDArray[Any], weight: NDArray[Any], top: NDArray[Any], bottom: NDArray[Any]) -> Any: ...

class Slicer:
    k: int
    cap: float
    max_store: int
    max_checks: int
    n: int
    q: int
    checks: int
    stored_mode_calls: int
    recompute_mode_calls: int
    unproven: int
    deadline: float
    best_val: float
    training: bool
    onef: bool
    def __init__(self, graph: Any, contraction: Any, k: int, mem: Any, cap_limit: float, max_store: int = ..., max_checks: int = ..., one_f_one_b: bool = ...) -> None: ...
    def slice_order(self, order: NDArray[Any], ub: float = ...) -> Any: ...
    def order_from_keys(self, keys: NDArray[Any]) -> Any: ...
    def decode(self, keys: NDArray[Any], ub: float = ...) -> Any: ...
    def decode_batch(self, keys: NDArray[Any], out: NDArray[Any], ub: float = ...) -> Any: ...
    def best(self) -> Any: ...
