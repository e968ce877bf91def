"""The autograd engine: Tensor, its primitives, the graph and backward (NumPy only)."""
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .random import manual_seed  # noqa: F401
from .tensor import Tensor  # noqa: F401
