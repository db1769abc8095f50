"""rtl4ml: trained models to fully pipelined, bit-exact, verified Verilog.

    design = rtl4ml.convert(model, input_type="fixed<16,6>", weight_type="fixed<8,3,RND,SAT>")
    design.predict(x); design.write("build/net"); design.verify(x); design.estimate()
"""

from ._version import __version__
from .fixed import FixedType, FixedTypeArray, Interval, parse_type, quantize
from .fidelity import Fidelity, QuantizationWarning, Rtl4mlWarning, TimingWarning
from .design import Design, convert, load

__all__ = ["__version__", "FixedType", "FixedTypeArray", "Interval", "parse_type", "quantize",
           "Fidelity", "QuantizationWarning", "Rtl4mlWarning", "TimingWarning", "Design", "convert", "load"]
