"""Model files that reach the PyTorch loader but are not ``torch.save`` files, recognised by
name and content, so that the error names what to do instead of a misleading parse error.

rtl4ml reads ``torch.save``-d PyTorch models, XGBoost models (``.json``, ``.ubj``), scikit-learn
models saved with skops, ONNX/QONNX models (``.onnx``), Keras 3 / HGQ2 models (``.keras``) and
saved rtl4ml designs. Legacy HDF5 Keras files (``.h5``) are refused with the way to re-save
them; a ``.keras`` file under another name is pointed to ``format='keras'``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..torch_common import ConversionError

#: the error for an HDF5 (legacy Keras) file
KERAS_H5 = ("a legacy HDF5 Keras file; rtl4ml reads Keras 3 .keras files: load the model with Keras and re-save it "
            "with model.save('model.keras')")

#: file suffix -> what the file is and what to do
SUFFIXES = {
    ".pkl": "pickle files are not read (unpickling runs arbitrary code); save a scikit-learn model with skops "
            "(skops.io.dump(model, 'model.skops')) and an XGBoost model with model.save_model('model.json'), or "
            "pass the fitted model to rtl4ml.convert in Python",
}
SUFFIXES[".pickle"] = SUFFIXES[".joblib"] = SUFFIXES[".pkl"]

_HDF5 = b"\x89HDF\r\n\x1a\n"
_ZIP = b"PK\x03\x04"
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"   # the pickled magic number of old torch.save files
_TAIL = (", which rtl4ml does not have yet (planned); rtl4ml converts PyTorch models (torch.save(model, 'model.pt'), "
         "or rtl4ml.convert(model) in Python), ONNX/QONNX and Keras 3 / HGQ2 models, XGBoost and scikit-learn tree "
         "models, and reads saved rtl4ml designs")


def _refuse(path: Path, what: str) -> ConversionError:
    return ConversionError(f"{path}: {what}{_TAIL}")


def _is_keras_zip(path: Path) -> bool:
    """A Keras 3 ``.keras`` archive (a zip with ``config.json`` and ``metadata.json``)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return {"config.json", "metadata.json"} <= names


def check_model_file(path: Path) -> None:
    """Raise a clear error for a model file of a kind rtl4ml cannot read yet (by suffix and
    first bytes); return for anything that may be a torch.save file."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(_HDF5):
        raise ConversionError(f"{path}: {KERAS_H5}")
    if head.startswith(_ZIP) and _is_keras_zip(path):
        raise ConversionError(f"{path} is a Keras 3 model archive: name it model.keras, or pass format='keras' "
                              "(--format keras)")
    if head.startswith((_ZIP, TORCH_LEGACY_MAGIC)):
        return   # torch.save's formats
    what = SUFFIXES.get(path.suffix.lower())
    if what is not None and path.suffix.lower() in (".pkl", ".pickle", ".joblib"):
        raise ConversionError(f"{path}: {what}")
    if what is not None:
        raise _refuse(path, what)


def check_json_model(path: Path, data: dict) -> None:
    """Raise a clear error for a JSON model of another tool (``data`` has no rtl4ml format)."""
    if "learner" in data and "version" in data:
        raise ConversionError(f"{path} is an XGBoost model, not a saved design: convert it with "
                              "rtl4ml.convert(path, input_type=...) or rtl4ml convert PATH --input-type TYPE")
    if "tree_info" in data:
        raise _refuse(path, "LightGBM models need a LightGBM reader in the tree frontend (it reads scikit-learn "
                      "and XGBoost models)")
    if "class_name" in data and "config" in data:
        raise ConversionError(f"{path} is a Keras model configuration without weights; save the whole model with "
                              "model.save('model.keras') and convert that")
    if "graph" in data and "opsetImport" in data:
        raise ConversionError(f"{path} is an ONNX model in JSON form; rtl4ml reads binary ONNX files: save it with "
                              "onnx.save(model, 'model.onnx')")
