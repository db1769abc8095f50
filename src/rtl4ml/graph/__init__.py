"""Graph IR: layer-level ops on tensors with exact per-element types."""

from .graph import Graph, GraphBuilder, Node
from .lower import lower_graph
from .ops import GraphError
from .tensor import TensorType

__all__ = ["Graph", "GraphBuilder", "Node", "TensorType", "GraphError", "lower_graph"]
