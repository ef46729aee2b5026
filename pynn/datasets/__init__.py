"""Small data sets shipped with pynn (no download)."""

from pynn.datasets import fashion_mnist, iris

__all__ = ["fashion_mnist", "iris"]
