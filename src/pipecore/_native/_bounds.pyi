# Generated from _bounds.pyx (signatures only); keep in step with the .pyx.
from typing import Any

from numpy.typing import NDArray

def local_cut_bounds(hptr: NDArray[Any], hnodes: NDArray[Any], hw: NDArray[Any], nptr: NDArray[Any], nhe: NDArray[Any], work: NDArray[Any], order: NDArray[Any], upper: NDArray[Any], floor: float, max_ball: int, deadline: float) -> Any: ...
