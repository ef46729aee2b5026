"""Small data sets shipped with pynn (no download)."""

from pynn.datasets import iris

__all__ = ["iris"]
