"""PyTorch frontend: any ``nn.Module``, traced with torch.fx, to a Graph.

The model's ``forward`` is traced symbolically (``torch.fx``) and every call in it is
translated by the table in :mod:`rtl4ml.frontends.torch_ops`: torch layers (Linear, ReLU,
BatchNorm, Flatten, Dropout, ...), functions and tensor methods (``+``, ``*``, ``torch.cat``,
``view``, ``permute``, ``sum``, slicing, ...). Modules are traced through, so a user's
module, or a subclass of a torch layer that overrides ``forward``, is converted as what its
``forward`` computes. A torch layer whose own ``forward`` runs is a leaf of the trace, as
is a quantization-aware layer, recognised by the export method of
:mod:`rtl4ml.torch_common` (``rtl4ml_export``), which appends its own nodes. Anything else is
refused with a message that names it and the line of the model's code that calls it.

Calls whose arguments are all constants (parameters, literals) are evaluated with torch in
float64 at conversion time. A constant that meets the model's tensors (``x * 0.45``) is
taken exactly when it is a short binary fraction (at most 16 significant bits), else it is
quantized with the ``weight_type`` of its layer (the module it appears in, or the call
itself at the top level), else refused.

Post-training quantization (plain torch layers): weights and biases are rounded to
``weight_type`` / ``bias_type``, ``result_type`` rounds every dense layer's output; a
BatchNorm becomes an ``Affine`` node that :func:`rtl4ml.passes.graph_passes.run_passes`
folds into the dense layer before it (before the rounding); one that cannot be folded is
refused. Type options are a string or a dict by layer name (``model.named_modules()``).

Inputs: one Graph input per argument of ``forward`` without a default value, named after
it (``x`` for an ``nn.Sequential``). ``input_type`` and ``input_shape`` (the shape of one
sample) are given for all inputs, by name (dict) or in order (list); a shape that is not
given is taken from the first layer that reads the input when it fixes it (a Linear reads
``in_features`` values; a layer that quantizes an input has its types). Outputs: a tensor, a
tuple or list (outputs named after the nodes that compute them), or a dict (named by keys).

Model files are loaded with ``torch.load(weights_only=True)`` and an allow-list of the
classes the file names that rtl4ml converts, so a file that holds anything else (a class of
your own, arbitrary pickled objects, code) is refused instead of executed.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import operator
import os
import re
import traceback
import warnings
from pathlib import Path

import numpy as np

from ..fidelity import warn_quantization
from ..fixed import FixedPointError, FixedTypeArray, as_type_array, parse_type
from ..graph import Graph, GraphBuilder
from ..graph.graph import Node
from ..graph.ops import Affine, Input
from ..passes.graph_passes import run_passes
from ..torch_common import EXPORT_METHOD, LOADABLE_ATTR, ConversionError, ExportContext, check_finite, export_class
from .formats import TORCH_LEGACY_MAGIC
from .params import is_short_fraction, option_type

try:  # torch is an optional extra
    import torch
    import torch.fx as fx
    from torch import nn

    from . import torch_ops as ops
except ImportError:  # pragma: no cover - exercised only without the extra
    torch = fx = nn = ops = None

TYPE_OPTIONS = ("weight_type", "bias_type", "result_type", "activation_type", "table_input_type")


def _require_torch() -> None:
    if torch is None:
        raise ImportError("the PyTorch frontend needs torch: pip install torch==2.13.0 'rtl4ml[torch]'")


# --------------------------------------------------------------------------- leaves


def forward_class(cls: type) -> type:
    """The class in ``cls``'s MRO that defines ``forward``."""
    return next(c for c in cls.__mro__ if "forward" in vars(c))


def leaf_kind(cls: type) -> str | None:
    """How the trace treats a module class: ``"export"`` (an exportable layer), ``"library"``
    (a torch layer running torch's own forward), ``"overridden"`` (an exportable layer's
    subclass that overrides forward: refused), or None (traced through)."""
    if issubclass(cls, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        return None
    fc = forward_class(cls)
    ec = export_class(cls)
    if ec is not None:
        return "export" if fc in ec.__mro__ else "overridden"
    return "library" if fc.__module__.split(".")[0] == "torch" else None


class _Tracer(fx.Tracer if fx is not None else object):
    record_stack_traces = True

    def is_leaf_module(self, m, module_qualified_name: str) -> bool:
        return leaf_kind(type(m)) is not None


_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep if torch is not None else "\0"
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>\S+)\n\s*(?P<code>[^\n]*)')


def _user_frame(frames: list[tuple[str, int, str]]) -> str:
    """``file:line: code`` of the innermost frame outside torch and this frontend."""
    here = os.path.dirname(__file__) + os.sep
    for file, line, code in reversed(frames):
        if not file.startswith(_TORCH_DIR) and not file.startswith(here):
            return f"{file}:{line}: {code.strip()}" if code else f"{file}:{line}"
    return ""


def _location(stack_trace: str | None) -> str:
    if not stack_trace:
        return ""
    return _user_frame([(m["file"], int(m["line"]), m["code"]) for m in _FRAME.finditer(stack_trace)])


# --------------------------------------------------------------------------- the context


def _shape_tuple(s, what: str) -> tuple[int, ...]:
    if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
        return (int(s),)
    if isinstance(s, (tuple, list)) and all(isinstance(d, (int, np.integer)) and d > 0 for d in s):
        return tuple(int(d) for d in s)
    raise ConversionError(f"{what} must be the shape of one sample (a tuple of positive integers, without the "
                          f"batch), got {s!r}")


def _per_input(spec, names: list[str], option: str, is_single) -> dict:
    """``spec`` for all inputs, a dict by input name, or a list in input order -> {name: value}."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ConversionError(f"{option} names inputs the model does not have: {unknown} (its inputs: {names})")
        return dict(spec)
    if is_single(spec):
        return {n: spec for n in names}
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ConversionError(f"{option} has {len(spec)} entries but the model has {len(names)} inputs {names}")
        return dict(zip(names, spec))
    raise ConversionError(f"{option} must be given for all inputs, as a dict by input name or a list; got {spec!r}")


class _Context(ExportContext):
    """One conversion: the builder, the options and what the translation has seen."""

    def __init__(self, model, options: dict, input_names: list[str]) -> None:
        self.builder = GraphBuilder()
        self.model = model
        self.cache: dict = {}
        self.options = options
        self.input_names = input_names
        single_shape = lambda s: isinstance(s, (int, np.integer)) or (  # noqa: E731
            isinstance(s, (tuple, list)) and all(isinstance(d, (int, np.integer)) for d in s))
        shapes = _per_input(options.get("input_shape"), input_names, "input_shape",
                            lambda s: len(input_names) == 1 and single_shape(s))
        self.input_shapes = {k: _shape_tuple(v, f"input_shape for input {k!r}") for k, v in shapes.items()}
        self.input_types = _per_input(options.get("input_type"), input_names, "input_type",
                                      lambda s: not isinstance(s, (dict, list, tuple)))
        self.used_options: set[str] = set()
        self.used_entries: dict[str, set[str]] = {o: set() for o in TYPE_OPTIONS}
        self.checks: list = []
        self.batchnorms: dict[str, ops.Call] = {}   # Affine node -> the BatchNorm call it came from
        self.quantized: dict[str, str] = {}         # node with pending types -> its call, as messages name it
        self.call: ops.Call | None = None           # the call being translated

    def _error(self, message: str) -> ConversionError:
        return self.call.error(message) if self.call is not None else ConversionError(message)

    # ------------------------------------------------------------------ types

    def type_for(self, option: str, layer: str, required: bool = True):
        """Resolve a type option that is a string or a ``{layer name: string}`` dict."""
        self.used_options.add(option)
        spec = self.options.get(option)
        if required and isinstance(spec, dict) and layer not in spec:
            raise ConversionError(f"{option} has no entry for layer {layer!r} (its keys: {sorted(spec)})")
        if required and spec is None:
            raise ConversionError(f"layer {layer!r} needs {option}, e.g. {option}='fixed<8,3,RND,SAT>'")
        return option_type(self.options, option, (layer,), self.used_entries, ConversionError,
                           where=f" for layer {layer!r}")

    def type_entries(self, layer: str) -> list[str]:
        return [o for o in TYPE_OPTIONS if isinstance(self.options.get(o), dict) and layer in self.options[o]]

    def add_check(self, check) -> None:
        self.checks.append(check)

    def constant(self, values, call, name: str, what: str | None = None) -> str:
        """A Constant node: exact for short binary fractions, else quantized to the layer's weight type."""
        v = np.asarray(values, dtype=np.float64)
        check_finite(v, call.layer, f"a constant of {call.what}")
        if all(is_short_fraction(x) for x in v.flat):
            return self.builder.constant(v, name=name)
        t = self.type_for("weight_type", call.layer, required=False)
        if t is None:
            first = next(float(x) for x in v.flat if not is_short_fraction(x))
            desc = what or (f"{first!r}" if v.ndim == 0 else f"tensor of shape {v.shape} (e.g. {first!r})")
            raise call.error(f"the constant {desc} is not a short binary fraction (at most 16 significant bits, "
                             f"e.g. 0.4375) and no weight_type applies to layer {call.layer!r} to quantize it; pass "
                             f"weight_type='fixed<...>' (or {{{call.layer!r}: 'fixed<...>'}}), or use an exact "
                             "constant")
        n = self.builder.constant(v, type=t, name=name)
        self.quantized[n] = call.what
        return n

    # ------------------------------------------------------------------ inputs and tensors

    def node(self, value, layer, *, features=None, shape=None, advice=None) -> str:
        if isinstance(value, ops.PendingInput):
            if value.node is None:
                self._create_input(value, features, shape, advice)
            n = value.node
        elif isinstance(value, ops.Tensor):
            n = value.node
            if value.rounding is not None:
                if value.rounded is None:
                    types, name = value.rounding
                    value.rounded = self.builder.quantize(value.node, types, name=name)
                n = value.rounded
        elif isinstance(value, ops.Unsupported):
            raise self._error(f"uses {value.message}")
        else:
            raise self._error(f"expects a tensor, got {type(value).__name__} {value!r}")
        if features is not None:
            s = self.builder.shape(n)
            if not s or s[-1] != features:
                raise self._error(f"expects {features} features on the last axis but receives a tensor of shape "
                                  f"(N, {', '.join(map(str, s))})")
        return n

    def _input_type(self, name: str):
        return self.input_types.get(name)

    def shape_known(self, p) -> bool:
        """Whether the options give the shape of input ``p``."""
        return p.name in self.input_shapes or isinstance(self._input_type(p.name), FixedTypeArray)

    def create_known_inputs(self, pending: list) -> None:
        """Create now the inputs whose type and shape the options give (in argument order)."""
        for p in pending:
            if self._input_type(p.name) is not None and self.shape_known(p):
                self._create_input(p, None, None, None)

    def _create_input(self, p, features, shape, advice) -> None:
        spec = self._input_type(p.name)
        many = len(self.input_names) > 1
        if spec is None:
            raise ConversionError(advice or "input_type is required for this model, e.g. input_type='fixed<16,6>'"
                                  + (f" (it has no entry for input {p.name!r})" if many else ""))
        s = self.input_shapes.get(p.name)
        if s is None and isinstance(spec, FixedTypeArray):
            s = spec.shape
        if s is None:
            s = tuple(shape) if shape is not None else (features,) if features else None
        if s is None:
            where = f"{self.call.what}{self.call.at}" if self.call is not None else "the model"
            raise ConversionError(f"the shape of input {p.name!r} is not known: its first use, {where}, does not "
                                  "fix it; pass input_shape=(...), the shape of one sample without the batch"
                                  + (" (or a dict by input name)" if many else ""))
        try:
            types = as_type_array(spec if isinstance(spec, FixedTypeArray) else parse_type(spec), s)
        except FixedPointError as e:
            raise ConversionError(f"input_type{f' for input {p.name!r}' if many else ''}: {e}") from None
        p.node = self.builder.input(types, name=p.name)

    def is_unread_input(self, value) -> bool:
        return isinstance(value, ops.PendingInput) and value.node is None

    def define_input(self, value, types: FixedTypeArray, layer: str) -> str:
        what = self.call.what if self.call is not None else f"layer {layer!r}"
        if not self.is_unread_input(value):
            raise ConversionError(f"{what} must be the model's first computing layer on its input: it defines the "
                                  "types of a model input")
        if self._input_type(value.name) is not None:
            raise ConversionError(f"input_type does not apply: {what} defines the input types; remove the "
                                  "input_type argument")
        s = self.input_shapes.get(value.name)
        if s is not None and s != types.shape:
            raise ConversionError(f"input_shape {s} for input {value.name!r} does not match {what}, which quantizes "
                                  f"{types.shape}")
        value.node = self.builder.input(types, name=value.name)
        return value.node


# --------------------------------------------------------------------------- tracing


def _trace(model) -> tuple["fx.Graph", list[inspect.Parameter]]:
    """The fx graph of ``model.forward`` and its parameters (those with defaults are constants)."""
    if leaf_kind(type(model)) is not None:   # a single layer: one call of it
        g = fx.Graph()
        g.output(g.call_module("", (g.placeholder("x"),)))
        return g, [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params = list(inspect.signature(model.forward).parameters.values())
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ConversionError(f"{type(model).__name__}.forward takes *{p.name}: rtl4ml needs named inputs")
    concrete = {p.name: p.default for p in params if p.default is not p.empty}
    try:
        graph = _Tracer().trace(model, concrete_args=concrete or None)
    except ConversionError:
        raise
    except Exception as e:  # noqa: BLE001 - fx reports any failure of the forward on proxies
        where = _user_frame([(f.filename, f.lineno, f.line or "") for f in traceback.extract_tb(e.__traceback__)])
        raise ConversionError(
            f"cannot trace {type(model).__name__}.forward with torch.fx{f' (at {where})' if where else ''}: "
            f"{type(e).__name__}: {e}. rtl4ml follows forward symbolically, so it may not branch or loop on tensor "
            "values or shapes, nor call code that needs real data") from None
    if type(model).forward is nn.Sequential.forward:
        params = [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD)]   # the historical name
    return graph, params


def _stack(node) -> list[tuple[str, type]]:
    return list((node.meta.get("nn_module_stack") or {}).values())


def _describe(model, node) -> "ops.Call":
    where = _location(node.stack_trace)
    if node.op == "call_module":
        m = model.get_submodule(node.target)
        layer = node.target
        return ops.Call(f"layer {layer or '<model>'!r} ({type(m).__name__})", layer or type(m).__name__.lower(),
                        layer, where)
    stack = _stack(node)
    what = (f"function {ops.function_name(node.target)}" if node.op == "call_function"
            else f"method Tensor.{node.target}")
    if stack:
        qual, cls = stack[-1]
        return ops.Call(f"{what} in layer {qual!r} ({cls.__name__})", f"{qual}.{node.name}", qual, where)
    return ops.Call(what, node.name, node.name, where)


def _layer_names(model, graph) -> set[str]:
    """Names per-layer type options may use: the modules the trace met, and top-level calls."""
    names = set()
    for n in graph.nodes:
        if n.op == "call_module":
            names.add(n.target)
        elif n.op in ("call_function", "call_method"):
            names.update([q for q, _ in _stack(n)] or [n.name])
    return names


def _attr(model, target: str):
    obj = model
    for atom in target.split("."):
        obj = getattr(obj, atom)
    if isinstance(obj, torch.Tensor):
        obj = obj.detach()
        return obj.to(torch.float64) if obj.is_floating_point() else obj
    return obj


def _unsupported(v):
    return isinstance(v, ops.Unsupported)


def _first(v, pred):
    if pred(v):
        return v
    items = v if isinstance(v, (tuple, list)) else v.values() if isinstance(v, dict) else ()
    return next((r for r in (_first(a, pred) for a in items) if r is not None), None)


def _bind(handler, call, *args, **kwargs) -> None:
    try:
        inspect.signature(handler).bind(*args, **kwargs)
    except TypeError as e:
        raise call.error(f"unsupported arguments ({e})") from None


def _supported_layers() -> str:
    return ", ".join(sorted(c.__name__.lstrip("_") for c in ops.MODULES)) + " and the rtl4ml.nn layers"


def _call_module(ctx: _Context, call, m, args, kwargs):
    kind = leaf_kind(type(m))
    if kind == "overridden":
        ec = export_class(type(m))
        raise call.error(f"overrides forward of {ec.__name__}, which converts through {EXPORT_METHOD}(); define "
                         f"{EXPORT_METHOD} for {type(m).__name__} too (or do not override forward)")
    if not ops.contains((args, kwargs), ops.is_var):
        raise call.error("is applied to constants only; compute them outside the model")
    if kind == "export":
        if kwargs:
            raise call.error(f"keyword arguments {sorted(kwargs)} are not supported")
        return ops.Tensor(getattr(m, EXPORT_METHOD)(ctx, call.layer, list(args)))
    handler = ops.MODULES.get(forward_class(type(m)))
    if handler is None:
        raise ConversionError(f"{call.what} is not supported{call.at}; supported layers: {_supported_layers()}")
    _bind(handler, call, ctx, call, m, *args, **kwargs)
    return handler(ctx, call, m, *args, **kwargs)


def _evaluate(call, node, args, kwargs):
    """A call on constants only, computed with torch (float64 parameters) now."""
    try:
        with torch.no_grad():
            if node.op == "call_function":
                return node.target(*args, **kwargs)
            return getattr(args[0], node.target)(*args[1:], **kwargs)
    except TypeError as e:
        if ops.contains((args, kwargs), lambda v: v is ops.BATCH):
            raise ops.batch_error(call, "computes with the batch size (only view/reshape(x.size(0), ...) may use it)")
        raise call.error(f"cannot be evaluated on its constant arguments: {e}") from None
    except Exception as e:  # noqa: BLE001 - the model's own code failed on constants
        raise call.error(f"cannot be evaluated on its constant arguments: {type(e).__name__}: {e}") from None


def _call(ctx: _Context, model, node, env: dict):
    args = fx.node.map_arg(node.args, env.__getitem__)
    kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
    call = ctx.call = _describe(model, node)
    picks = node.op == "call_function" and node.target in (getattr, operator.getitem)   # may pick a good part
    bad = None if picks else _first((args, kwargs), _unsupported)
    if bad is not None:
        raise call.error(f"uses {bad.message}")
    if node.op == "call_module":
        return _call_module(ctx, call, model.get_submodule(node.target), args, kwargs)
    if not ops.contains((args, kwargs), ops.is_var):
        return _evaluate(call, node, args, kwargs)
    if node.op == "call_function":
        handler = ops.FUNCTIONS.get(node.target) if _hashable(node.target) else None
    else:
        handler = ops.METHODS.get(node.target)
    if handler is None:
        raise ConversionError(f"{call.what} is not supported{call.at}; supported: {ops.supported_functions()}")
    _bind(handler, call, ctx, call, *args, **kwargs)
    return handler(ctx, call, *args, **kwargs)


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _outputs(ctx: _Context, out) -> list[tuple[str | None, str]]:
    """(name to give, node) per output of ``forward``'s result."""
    if isinstance(out, dict):
        items = list(out.items())
        for k, _ in items:
            if not isinstance(k, str) or not k:
                raise ConversionError(f"forward returns a dict with key {k!r}: output names must be strings")
    elif isinstance(out, (tuple, list)):
        items = [(None, v) for v in out]
    else:
        items = [(None, out)]
    if all(isinstance(v, ops.PendingInput) for _, v in items):
        raise ConversionError("the model has no computing layer (only pass-through layers)")
    ctx.call = None
    result, seen = [], set()
    for k, (key, v) in enumerate(items):
        label = f"output {key!r}" if key is not None else f"output {k}" if len(items) > 1 else "the output"
        if isinstance(v, ops.PendingInput):
            raise ConversionError(f"{label} is the model input {v.name!r} itself; rtl4ml outputs computed tensors")
        if isinstance(v, ops.Unsupported):
            raise ConversionError(f"{label} is {v.message}")
        if not isinstance(v, ops.Tensor):
            raise ConversionError(f"{label} is a constant ({type(v).__name__}), not computed from the inputs")
        n = ctx.node(v, "output")
        if n in seen:
            raise ConversionError(f"{label} is the same tensor as an earlier output; return it once")
        seen.add(n)
        result.append((key, n))
    return result


def _renamed(graph: Graph, mapping: dict[str, str]) -> Graph:
    """``graph`` with nodes renamed by ``mapping`` (other nodes with a wanted name step aside)."""
    if all(k == v for k, v in mapping.items()):
        return graph
    taken = set(mapping.values())
    names = {n.name for n in graph.nodes} | taken
    full = dict(mapping)
    for n in graph.nodes:
        if n.name not in full and n.name in taken:
            k = 1
            while f"{n.name}_{k}" in names:
                k += 1
            full[n.name] = f"{n.name}_{k}"
            names.add(full[n.name])
    nodes = tuple(Node(full.get(n.name, n.name), n.op, tuple(full.get(i, i) for i in n.inputs)) for n in graph.nodes)
    return Graph(nodes, tuple(full.get(o, o) for o in graph.outputs))


def _check_type_keys(options: dict, known: set[str], used: dict[str, set[str]] | None) -> None:
    for opt in TYPE_OPTIONS:
        spec = options.get(opt)
        if not isinstance(spec, dict):
            continue
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ConversionError(f"{opt} names layers the model does not have: {unknown} (layers: {sorted(known)})")
        if used is not None:
            idle = sorted(set(spec) - used[opt])
            if idle:
                raise ConversionError(f"{opt} has entries for layers that do not use it: {idle}; remove them")


def from_torch(model, input_type=None, input_shape=None, weight_type=None, bias_type=None,
               result_type=None, activation_type=None, table_input_type=None) -> Graph:
    """Convert a ``torch.nn.Module`` (traced with torch.fx; see the module docstring) to a Graph.

    ``input_type``: a type string (or :class:`~rtl4ml.fixed.FixedTypeArray`) for all
    inputs, or a dict by input name. ``input_shape``: the shape of one sample (a tuple; a
    dict by name or a list for several inputs), where the model does not fix it.
    ``weight_type``, ``bias_type``, ``result_type``: a type string or ``{layer name: type}``,
    used by the layers that need them; an option or entry that no layer uses is an error.
    ``activation_type``: the entries of sigmoid/tanh/... tables and the output of a softmax
    (defaults: ``ufixed<8,0,RND,SAT>`` for sigmoid, ``fixed<8,1,RND,SAT>`` for tanh, the
    softmax's own); ``table_input_type``: quantizes a table's input first (a table holds at
    most 2^12 entries).
    """
    _require_torch()
    if not isinstance(model, nn.Module):
        raise ConversionError(f"expected a torch.nn.Module, got {type(model).__name__}")
    options = dict(input_type=input_type, input_shape=input_shape, weight_type=weight_type, bias_type=bias_type,
                   result_type=result_type, activation_type=activation_type, table_input_type=table_input_type)
    flags = [(m, m.training) for m in model.modules()]
    attrs = set(vars(model))
    model.eval()   # inference semantics while tracing (F.dropout(training=self.training), ...)
    try:
        return _convert(model, options)
    finally:
        for m, t in flags:
            m.training = t
        for k in set(vars(model)) - attrs:   # constants fx attached to the model while tracing
            delattr(model, k)


def _convert(model, options: dict) -> Graph:
    graph, params = _trace(model)
    _check_type_keys(options, _layer_names(model, graph), None)
    ctx = _Context(model, options, [p.name for p in params if p.default is p.empty])
    env: dict = {}
    pending: list = []
    params_left = iter(params)
    out = None
    for node in graph.nodes:
        if node.op == "placeholder":
            p = next(params_left)
            if p.default is p.empty:
                env[node] = ops.PendingInput(p.name)
                pending.append(env[node])
            else:
                env[node] = p.default
            if node.next.op != "placeholder":
                ctx.create_known_inputs(pending)
        elif node.op == "get_attr":
            env[node] = _attr(model, node.target)
        elif node.op == "output":
            out = fx.node.map_arg(node.args[0], env.__getitem__)
        else:
            env[node] = _call(ctx, model, node, env)
    outputs = _outputs(ctx, out)
    for p in pending:   # inputs nothing reads still are ports of the design
        if p.node is None:
            try:
                ctx.node(p, p.name)
            except ConversionError:
                raise ConversionError(f"the model's input {p.name!r} is not used: remove it from forward, or give "
                                      "input_type and input_shape for it") from None
    unused = [o for o in TYPE_OPTIONS if options.get(o) is not None and o not in ctx.used_options]
    if unused:
        raise ConversionError(f"{', '.join(unused)} given, but no layer of this model uses it: layers from "
                              "rtl4ml.nn carry their own trained types; remove the argument")
    _check_type_keys(options, _layer_names(model, graph), ctx.used_entries)
    built = ctx.builder.build([n for _, n in outputs])
    order = {p.node: k for k, p in enumerate(pending)}
    inputs = sorted((n for n in built.nodes if isinstance(n.op, Input)), key=lambda n: order[n.name])
    g = run_passes(Graph(tuple(inputs) + tuple(n for n in built.nodes if not isinstance(n.op, Input)),
                         built.outputs))
    for check in ctx.checks:
        check(g)
    warn_quantization(g, ctx.quantized)
    for name, call in ctx.batchnorms.items():
        if name in g and isinstance(g[name].op, Affine):
            raise ConversionError(
                f"{call.what}{call.at} must directly follow a Linear layer, into which it is folded before the "
                "weights are rounded (a Linear with weight_type whose output nothing else reads); a BatchNorm that "
                "cannot be folded has no fixed-point types")
    return _renamed(g, {n: key for key, n in outputs if key is not None})


# --------------------------------------------------------------------------- model files


def _loadable_class(qualname: str):
    """The class a model file names, if rtl4ml converts it: a torch layer with a translation,
    a container, or an rtl4ml.nn layer (or part of one) marked by the export protocol."""
    mod, _, attr = qualname.rpartition(".")
    if not (mod.startswith("torch.nn.") or mod.startswith("rtl4ml.nn.")):
        return None
    try:
        cls = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError):
        return None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        return None
    if mod.startswith("rtl4ml."):
        return cls if export_class(cls) is not None or getattr(cls, LOADABLE_ATTR, False) else None
    if issubclass(cls, (nn.Sequential, nn.ModuleList, nn.ModuleDict)) or forward_class(cls) in ops.MODULES:
        return cls
    return None


def _refused(path: Path, qualname: str | None) -> ConversionError:
    known = f"the torch layers {_supported_layers()}"
    if qualname is None:
        what = f"it contains an object that is not one of {known}"
    elif qualname.startswith(("torch.", "rtl4ml.")):
        what = f"it contains {qualname}, which is not one of {known}"
    else:
        what = (f"it contains {qualname}, which is not a class of torch.nn or rtl4ml.nn (a class or function of "
                "your own?); to convert your own module, call rtl4ml.convert(model) in Python, which traces its "
                "forward")
    return ConversionError(f"{path}: refused to load: {what}. rtl4ml never unpickles arbitrary objects.")


def _unreadable(path: Path) -> ConversionError:
    with open(path, "rb") as f:
        legacy = f.read(len(TORCH_LEGACY_MAGIC)) == TORCH_LEGACY_MAGIC
    if legacy:
        return ConversionError(f"cannot read {path}: it is in torch's old non-zip format (torch < 1.6, or "
                               "_use_new_zipfile_serialization=False), which cannot be loaded without unpickling "
                               "arbitrary objects; load it in Python and save it again with torch.save(model, path)")
    return ConversionError(f"cannot read {path} (not a torch.save file, or truncated); rtl4ml never unpickles "
                           "arbitrary objects")


def load_torch_file(path: str | Path):
    """Load a ``torch.save``-d model without executing arbitrary pickled code.

    Only the module classes rtl4ml converts may be reconstructed (see :func:`_loadable_class`).
    """
    _require_torch()
    path = Path(path)
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except FileNotFoundError:
        raise
    except Exception:  # noqa: BLE001 - not a torch.save archive: torch.load below refuses it
        needed = []
    allowed = []
    for q in needed:
        cls = _loadable_class(q)
        if cls is None:
            raise _refused(path, q)
        allowed.append(cls)
    try:
        with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - turn the unpickler's report into one clear line
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if m and _loadable_class(m.group(1)) is None:
            raise _refused(path, m.group(1)) from None
        raise _unreadable(path) from None
    if isinstance(obj, dict):
        raise ConversionError(f"{path} holds a state_dict (weights only, no architecture); "
                              "save the module itself with torch.save(model, path)")
    if not isinstance(obj, nn.Module):
        raise ConversionError(f"{path} does not hold a torch.nn.Module (found {type(obj).__name__})")
    return obj


def run_float(model, inputs: list[np.ndarray]):
    """``model``'s result on ``inputs`` (one (N, *shape) array per ``forward`` argument),
    computed on a copy of the model in evaluation mode and float64, without gradients."""
    _require_torch()
    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return m(*[torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in inputs])


__all__ = ["ConversionError", "from_torch", "load_torch_file", "run_float", "leaf_kind", "forward_class"]
