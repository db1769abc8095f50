"""Graph ops, one file per op family. Importing this package registers them all."""

from .base import OP_REGISTRY, GraphError, Op
from .dense import Dense
from .elementwise import Add, Quantize, ReLU
from .io import Input

__all__ = ["OP_REGISTRY", "GraphError", "Op", "Input", "Dense", "ReLU", "Quantize", "Add"]
