"""Data shipped inside micrograd, so that the quickstart needs no network.

``DIGITS`` is a folder of 3,000 real MNIST digits (300 of each class, the first
of each in the MNIST test set's order) as the IDX pair
``t10k-images-idx3-ubyte.gz`` / ``t10k-labels-idx1-ubyte.gz``: the config's
``data: {type: mnist, sample: true}``. ``make_digits_sample.py`` made it; ``digits/README.md``
says where the digits come from and under which licence.
"""
from pathlib import Path

DIGITS = Path(__file__).resolve().parent / "digits"
