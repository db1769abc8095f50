"""Graph ops, one file per op family. Importing this package registers them all."""

from .affine import Affine
from .arith import Add, Maximum, Minimum, Mul, Square, Sub
from .base import OP_REGISTRY, GraphError, Op
from .conv import Conv
from .dense import Dense
from .einsum import Einsum
from .elementwise import Quantize, ReLU
from .io import Constant, Input
from .lookup import LookupTable
from .luts import BitLookup, Popcount, Thermometer
from .pool import Pool, Upsample
from .reduce import Argmax, Reduce
from .shape import Concat, Reshape, Slice, Transpose
from .trees import TreeEnsemble

__all__ = ["OP_REGISTRY", "GraphError", "Op", "Input", "Constant", "Dense", "ReLU", "Quantize", "Add", "Sub",
           "Mul", "Maximum", "Minimum", "Affine", "Reduce", "Reshape", "Transpose", "Slice", "Concat",
           "LookupTable", "Conv", "Pool", "Upsample",
           "Square", "Argmax", "TreeEnsemble", "Einsum", "Thermometer", "BitLookup", "Popcount"]
