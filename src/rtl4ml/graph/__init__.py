"""Graph IR: layer-level ops on N-D tensors with exact per-element types, as a DAG."""

from .graph import Graph, GraphBuilder, Node
from .lower import lower_graph
from .ops import GraphError
from .tensor import TensorType

__all__ = ["Graph", "GraphBuilder", "Node", "TensorType", "GraphError", "lower_graph"]
