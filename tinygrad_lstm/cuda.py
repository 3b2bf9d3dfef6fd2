"""`tl.cuda`: is a GPU usable through CuPy here, and if not, why?"""

from .tensor.backend import cuda_device_count as device_count
from .tensor.backend import cuda_is_available as is_available
from .tensor.backend import cuda_problem as problem

__all__ = ["device_count", "is_available", "problem"]
