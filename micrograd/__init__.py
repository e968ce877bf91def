"""micrograd: a NumPy autograd engine shaped like PyTorch, and a trainer built on it.

    import micrograd.tensor as mt
    import micrograd.nn as mn
"""
__version__ = "0.1.0"
