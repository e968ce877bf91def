"""The public engine API: ``import micrograd.tensor as mt``.

Everything a training script touches in one namespace, as the design
document's programs use it: ``mt.Tensor``, ``mt.no_grad``, ``mt.cat``,
``mt.argmax``, and the losses, optimisers and data loading built on the engine
(``mt.MSELoss``, ``mt.Adam``, ``mt.DataLoader``). The code itself lives in
``micrograd.engine``, ``micrograd.losses``, ``micrograd.optim`` and
``micrograd.data``; this module only gathers it.
"""
from micrograd.engine.autograd import (  # noqa: F401
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from micrograd.engine.ops import *  # noqa: F401,F403
from micrograd.engine.ops import abs, max, min, sum  # noqa: F401,A004
from micrograd.engine.random import get_rng_state, manual_seed, set_rng_state  # noqa: F401
from micrograd.engine.tensor import DEFAULT_DTYPE, Tensor, argmax  # noqa: F401
from micrograd.losses import *  # noqa: F401,F403
from micrograd.optim import *  # noqa: F401,F403
from micrograd.data.dataloader import DataLoader  # noqa: F401
from micrograd.data.dataset import Dataset, TensorDataset  # noqa: F401

float32 = "float32"
float64 = "float64"
int64 = "int64"
