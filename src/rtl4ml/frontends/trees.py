"""Tree ensembles to a Graph: scikit-learn and XGBoost models and files.

``from_trees(model, input_type, leaf_type=None, accuracy=None, argmax=False)`` takes a fitted
scikit-learn ``DecisionTree*``, ``RandomForest*`` / ``ExtraTrees*``, ``GradientBoosting*`` or
``HistGradientBoosting*`` (classifier or regressor), an XGBoost ``XGBClassifier`` /
``XGBRegressor`` / ``Booster``, or the path of a saved XGBoost model (``.json``, ``.ubj``) or
of a scikit-learn model saved with skops (``.skops``; only scikit-learn and numpy types are
loaded, never an arbitrary pickle). The Graph has one input ``x`` (the features) and the
output ``scores``: the raw scores (XGBoost's margin, scikit-learn's ``decision_function``,
a forest's class probabilities or a regressor's prediction), plus ``class`` (their argmax)
with ``argmax=True``.

What is exact (docs/trees.md): every decision on a quantized input equals the source
model's decision on that value (thresholds become integer code comparisons in exact
arithmetic, under the model's ``<`` or ``<=`` convention); learning rates and forest
averaging are folded into the leaf values and base scores before they are quantized to
``leaf_type``; the output is the exact sum of the quantized values. ``accuracy`` instead of
``leaf_type`` picks the fewest fractional bits (round to nearest) whose summed rounding
error stays within ``accuracy`` on every output.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..fixed import FixedType, FixedTypeArray, parse_type
from ..graph import Graph, GraphBuilder
from ..graph.ops.trees import TreeEnsemble
from ..torch_common import ConversionError

#: The default ``accuracy`` (largest rounding error of the leaf sums, per output).
DEFAULT_ACCURACY = 2.0 ** -10


class _Trees:
    """Trees accumulated into flat arrays with global node indices."""

    def __init__(self, n_outputs: int) -> None:
        self.n_outputs = n_outputs
        self.parts: list[dict] = []
        self.n = 0

    def add(self, feature, threshold, left, right, values, default_left=None) -> None:
        """One tree: per node ``feature`` (< 0 at a leaf), ``threshold``, children (local
        indices, < 0 at a leaf), ``values`` (nodes x n_outputs)."""
        feature = np.asarray(feature, dtype=np.int64)
        n = len(feature)
        inner = feature >= 0
        left = np.where(inner, np.asarray(left, dtype=np.int64) + self.n, -1)
        right = np.where(inner, np.asarray(right, dtype=np.int64) + self.n, -1)
        dl = np.ones(n, dtype=bool) if default_left is None else np.asarray(default_left, dtype=bool)
        self.parts.append(dict(feature=np.where(inner, feature, -1), threshold=np.where(inner, threshold, 0.0),
                               left=left, right=right, value=np.asarray(values, dtype=np.float64).reshape(n, -1),
                               default_left=dl, root=self.n))
        self.n += n

    def op(self, base, split: str, leaf_type, missing=None) -> TreeEnsemble:
        cat = lambda k: np.concatenate([p[k] for p in self.parts])  # noqa: E731
        return TreeEnsemble(cat("feature"), cat("threshold"), cat("left"), cat("right"), cat("value"),
                            np.array([p["root"] for p in self.parts]), np.asarray(base, dtype=np.float64), split,
                            leaf_type, cat("default_left"), missing)


# --------------------------------------------------------------------------- leaf types


def leaf_type_for(values: np.ndarray, base: np.ndarray, trees_per_output: np.ndarray, accuracy: float) -> FixedType:
    """The narrowest round-to-nearest type whose rounding errors, summed over the leaves an
    input reaches (one per tree) and the base score, stay within ``accuracy`` per output."""
    if not (isinstance(accuracy, (int, float)) and accuracy > 0):
        raise ConversionError(f"accuracy must be a positive number, got {accuracy!r}")
    terms = int(np.max(trees_per_output, initial=0)) + 1
    f = max(math.ceil(math.log2(terms / accuracy)) - 1, 0)   # terms * 2**-(f+1) <= accuracy
    m = float(max(np.abs(values).max(initial=0), np.abs(base).max(initial=0)))
    i = max(math.floor(math.log2(m)) + 1, 0) if m > 0 else 0
    return FixedType(True, i, f, "RND", "SAT")


def _leaf_type(leaf_type, accuracy, tr: _Trees, base) -> FixedType | None:
    if leaf_type is not None and accuracy is not None:
        raise ConversionError("give leaf_type or accuracy, not both")
    if leaf_type is not None:
        return parse_type(leaf_type) if isinstance(leaf_type, str) else leaf_type
    values = np.concatenate([p["value"] for p in tr.parts])
    used = np.array([[np.any(p["value"][:, k] != 0) for k in range(tr.n_outputs)] for p in tr.parts])
    return leaf_type_for(values, np.asarray(base), used.sum(axis=0), DEFAULT_ACCURACY if accuracy is None else accuracy)


# --------------------------------------------------------------------------- scikit-learn


def _sk_tree(tr: _Trees, t, scale: float, columns, n_values: int | None = None, proba: bool = False) -> None:
    """A fitted ``sklearn.tree._tree.Tree``: leaf values times ``scale`` into ``columns``."""
    v = np.asarray(t.value, dtype=np.float64)   # (nodes, outputs, classes)
    if proba:
        v = v[:, 0, :]
        s = v.sum(axis=1, keepdims=True)
        v = np.divide(v, s, out=np.zeros_like(v), where=s > 0)   # recent versions store fractions already
    else:
        v = v[:, :, 0]
    values = np.zeros((t.node_count, tr.n_outputs))
    values[:, columns] = v * scale
    tr.add(t.feature, t.threshold, t.children_left, t.children_right, values)


def _check_sklearn_init(model, name: str) -> None:
    init = getattr(model, "init_", None)
    if init == "zero" or init is None:
        return
    if type(init).__name__ not in ("DummyClassifier", "DummyRegressor"):
        raise ConversionError(f"{name}: init={type(init).__name__} depends on the input; only the default "
                              "(constant prior) or 'zero' init can be converted")


def from_sklearn(model, input_type, leaf_type=None, accuracy=None, argmax: bool = False) -> Graph:
    """A fitted scikit-learn tree model (see the module doc)."""
    name = type(model).__name__
    if not hasattr(model, "n_features_in_"):
        raise ConversionError(f"{name} is not fitted (no n_features_in_); fit it first")
    n_features = int(model.n_features_in_)
    is_clf = hasattr(model, "classes_")
    if getattr(model, "n_outputs_", 1) != 1 and is_clf:
        raise ConversionError(f"{name} has {model.n_outputs_} outputs: multi-output classifiers are not supported")
    if name in ("DecisionTreeClassifier", "ExtraTreeClassifier", "DecisionTreeRegressor", "ExtraTreeRegressor",
                "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor"):
        trees = [model] if hasattr(model, "tree_") else list(model.estimators_)
        k = len(model.classes_) if is_clf else int(getattr(model, "n_outputs_", 1))
        tr = _Trees(k)
        for est in trees:
            _sk_tree(tr, est.tree_, 1.0 / len(trees), list(range(k)), proba=is_clf)
        base = np.zeros(k)
        split = "le"
    elif name in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
        _check_sklearn_init(model, name)
        est = model.estimators_   # (n_estimators, K)
        k = est.shape[1]
        tr = _Trees(k)
        for row in est:
            for j, e in enumerate(row):
                _sk_tree(tr, e.tree_, float(model.learning_rate), [j])
        base = np.asarray(model._raw_predict_init(np.zeros((1, n_features))), dtype=np.float64).reshape(-1)
        split = "le"
    elif name in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        preds = model._predictors
        k = len(preds[0])
        tr = _Trees(k)
        for it in preds:
            for j, p in enumerate(it):
                nd = p.nodes
                if np.any(nd["is_categorical"]):
                    raise ConversionError(f"{name}: categorical splits are not supported (features "
                                          f"{sorted(set(nd['feature_idx'][nd['is_categorical']].tolist()))})")
                leaf = nd["is_leaf"].astype(bool)
                values = np.zeros((len(nd), k))
                values[leaf, j] = nd["value"][leaf]   # shrinkage is already in the values
                tr.add(np.where(leaf, -1, nd["feature_idx"]), nd["num_threshold"], nd["left"], nd["right"], values,
                       nd["missing_go_to_left"])
        base = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
        split = "le"
    else:
        raise ConversionError(f"cannot convert a scikit-learn {name}: rtl4ml converts DecisionTree, ExtraTree(s), "
                              "RandomForest, GradientBoosting and HistGradientBoosting classifiers and regressors")
    return _graph(tr, base, split, n_features, input_type, leaf_type, accuracy, argmax)


# --------------------------------------------------------------------------- XGBoost


def _xgb_json(model) -> tuple[dict, int | None, float | None]:
    """The model JSON of an XGBoost object or file, its best iteration and ``missing`` value."""
    best, missing = None, None
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ConversionError(f"{path} is not a JSON file: {e}") from None
        else:
            try:
                import xgboost
            except ImportError:
                raise ConversionError(f"{path}: reading a binary XGBoost model needs xgboost "
                                      "(pip install 'rtl4ml[trees]'); a .json model needs nothing") from None
            b = xgboost.Booster()
            try:
                b.load_model(str(path))
            except Exception as e:   # xgboost raises its own XGBoostError
                raise ConversionError(f"{path}: XGBoost cannot read it: {str(e).splitlines()[0]}") from None
            data = json.loads(bytes(b.save_raw("json")))
        if not isinstance(data, dict) or "learner" not in data:
            raise ConversionError(f"{path} is not an XGBoost model (no 'learner' in the JSON)")
        return data, _best_iteration(data), None
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    m = getattr(model, "missing", None)
    if m is not None and not (isinstance(m, float) and math.isnan(m)):
        missing = float(m)
    data = json.loads(bytes(booster.save_raw("json")))
    best = getattr(model, "best_iteration", None) if hasattr(model, "get_booster") else None
    try:
        best = int(best) if best is not None else _best_iteration(data)
    except (AttributeError, TypeError, ValueError):
        best = _best_iteration(data)
    return data, best, missing


def _best_iteration(data: dict) -> int | None:
    attrs = data.get("learner", {}).get("attributes", {})
    return int(attrs["best_iteration"]) if "best_iteration" in attrs else None


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def from_xgboost(model, input_type, leaf_type=None, accuracy=None, argmax: bool = False,
                 missing: float | None = None, what: str | None = None) -> Graph:
    """An XGBoost model: ``XGBClassifier`` / ``XGBRegressor`` / ``Booster``, or a ``.json`` /
    ``.ubj`` file. The output is the margin (``predict(output_margin=True)``). ``missing``: the
    input value XGBoost treats as missing (default: the model object's ``missing`` when it
    is not NaN); such inputs take each node's default direction. With early stopping, the
    trees up to the best iteration are used, as XGBoost's own ``predict`` does."""
    what = what or (str(model) if isinstance(model, (str, Path)) else type(model).__name__)
    data, best, own_missing = _xgb_json(model)
    missing = own_missing if missing is None else missing
    learner = data["learner"]
    gb = learner.get("gradient_booster", {})
    if gb.get("name") != "gbtree":
        raise ConversionError(f"{what}: booster {gb.get('name')!r} is not supported (only gbtree; dart and "
                              "gblinear are not tree sums rtl4ml converts)")
    mp = learner["learner_model_param"]
    n_class = int(mp.get("num_class", 0))
    if int(mp.get("num_target", 1)) > 1:
        raise ConversionError(f"{what}: multi-target models are not supported")
    k = max(n_class, 1)
    n_features = int(mp["num_feature"])
    objective = learner.get("objective", {}).get("name", "")
    base = [float(v) for v in str(mp["base_score"]).strip("[]").split(",")]
    if len(base) == 1:
        base = base * k
    if objective in ("binary:logistic", "reg:logistic"):
        base = [_logit(b) for b in base]   # stored as a probability
    elif objective in ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft"):
        base = [math.log(b) for b in base]   # log link
    model_ = gb["model"]
    trees = model_["trees"]
    info = model_["tree_info"]
    per_iter = len(trees) // max(int(model_.get("gbtree_model_param", {}).get("num_trees", len(trees))), 1)
    if best is not None:
        indptr = model_.get("iteration_indptr")
        end = indptr[best + 1] if indptr and best + 1 < len(indptr) else None
        if end is None:
            n_par = int(model_.get("gbtree_model_param", {}).get("num_parallel_tree", 1))
            end = (best + 1) * k * n_par
        trees, info = trees[:end], info[:end]
    del per_iter
    tr = _Trees(k)
    for t, cls in zip(trees, info):
        p = t.get("tree_param", {})
        if int(p.get("size_leaf_vector", 1)) > 1:
            raise ConversionError(f"{what}: vector-leaf trees (multi_strategy='multi_output_tree') are not supported")
        if any(int(s) != 0 for s in t.get("split_type", [])):
            raise ConversionError(f"{what}: tree {t.get('id')} has categorical splits, which are not supported")
        left = np.asarray(t["left_children"], dtype=np.int64)
        right = np.asarray(t["right_children"], dtype=np.int64)
        # XGBoost compares float32 values: thresholds are float32 (the JSON's shortest decimal, back to float32)
        cond = np.asarray(t["split_conditions"], dtype=np.float32).astype(np.float64)
        leaf = left < 0
        feature = np.where(leaf, -1, np.asarray(t["split_indices"], dtype=np.int64))
        values = np.zeros((len(left), k))
        values[leaf, int(cls)] = cond[leaf]
        tr.add(feature, cond, left, right, values, np.asarray(t["default_left"], dtype=bool))
    if not tr.parts:
        raise ConversionError(f"{what}: the model has no trees")
    return _graph(tr, np.asarray(base), "lt", n_features, input_type, leaf_type, accuracy, argmax, missing)


# --------------------------------------------------------------------------- common


def _graph(tr: _Trees, base, split, n_features, input_type, leaf_type, accuracy, argmax, missing=None) -> Graph:
    if input_type is None:
        raise ConversionError("a tree model needs input_type (the fixed-point type of the features, e.g. "
                              "'fixed<16,6>', or a FixedTypeArray of one type per feature)")
    lt = _leaf_type(leaf_type, accuracy, tr, base)
    if isinstance(input_type, FixedTypeArray) and input_type.shape not in ((n_features,), ()):
        raise ConversionError(f"input_type has types of shape {input_type.shape}; the model reads {n_features} "
                              "features")
    g = GraphBuilder()
    x = g.input(input_type if isinstance(input_type, FixedTypeArray) else parse_type(input_type), (n_features,),
                name="x")
    y = g.node(tr.op(base, split, lt, missing), (x,), "scores")
    outs = [y]
    if argmax:
        from ..graph.ops.reduce import Argmax
        outs.append(g.node(Argmax(), (y,), "class"))
    return g.build(outs)


def is_tree_model(model) -> bool:
    """Whether ``model`` is an object this frontend converts (scikit-learn or XGBoost)."""
    mod = type(model).__module__
    return mod.startswith("sklearn.") or mod.startswith("xgboost.")


def from_trees(model, input_type, leaf_type=None, accuracy=None, argmax: bool = False, **kw) -> Graph:
    """Any model or file of this frontend (see the module doc)."""
    if input_type is None:
        what = str(model) if isinstance(model, (str, Path)) else type(model).__name__
        raise ConversionError(f"{what}: a tree model needs input_type (the fixed-point type of its features, e.g. "
                              "'fixed<16,6>' or --input-type 'fixed<16,6>')")
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists():
            raise FileNotFoundError(f"model file {path} does not exist")
        if path.suffix.lower() == ".skops":
            model = load_skops(path)
        else:
            return from_xgboost(path, input_type, leaf_type, accuracy, argmax, **kw)
    mod = type(model).__module__
    if mod.startswith("xgboost."):
        return from_xgboost(model, input_type, leaf_type, accuracy, argmax, **kw)
    if mod.startswith("sklearn."):
        if kw:
            raise ConversionError(f"{type(model).__name__}: options {sorted(kw)} apply to XGBoost models only")
        return from_sklearn(model, input_type, leaf_type, accuracy, argmax)
    raise ConversionError(f"cannot convert a {type(model).__name__} as a tree model: rtl4ml reads scikit-learn "
                          "and XGBoost models")


def load_skops(path: str | Path):
    """A scikit-learn model saved with ``skops.io.dump``; refuses any type that is not
    scikit-learn's or numpy's (skops never unpickles; it instantiates only trusted types)."""
    try:
        import skops.io as sio
    except ImportError:
        raise ConversionError(f"{path}: reading a .skops file needs skops (pip install 'rtl4ml[trees]')") from None
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:   # a file that is not a skops archive
        raise ConversionError(f"{path} is not a skops file: {e}") from None
    bad = [t for t in untrusted if not t.split(".")[0] in ("sklearn", "numpy", "builtins")]
    if bad:
        raise ConversionError(f"{path} holds types that are not scikit-learn's or numpy's: {bad}; rtl4ml does not "
                              "load them")
    return sio.load(path, trusted=untrusted)


def tree_file_kind(path: Path) -> str | None:
    """``'xgboost'`` or ``'skops'`` for a file this frontend reads (by suffix, and for a
    ``.json`` by its first bytes), else None."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".skops":
        return "skops"
    if suffix in (".ubj", ".xgb"):
        return "xgboost"
    if suffix == ".json":
        with open(path, "rb") as f:
            head = f.read(256)
        if b'"learner"' in head:
            return "xgboost"
    return None
