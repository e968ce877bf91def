"""The autograd engine: Tensor, its primitives, the graph and backward (NumPy only)."""
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .memory import keep_freed_memory
from .random import manual_seed  # noqa: F401
from .tensor import Tensor  # noqa: F401

# Once per process, on first import: see memory.py (about a third of a CNN step).
keep_freed_memory()
