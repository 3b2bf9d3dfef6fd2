"""`tl.cuda`: is a GPU usable through CuPy here?"""

from .tensor.backend import cuda_device_count as device_count
from .tensor.backend import cuda_is_available as is_available

__all__ = ["device_count", "is_available"]
