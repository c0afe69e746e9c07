"""`import conduit`: the Python API under the product's name.

    from conduit import Conduit
    Conduit.from_file("conduit.yaml").load().run([[5.1, 3.5, 1.4, 0.2]])
"""

from conduit_build.api import Conduit, PredictionError

__all__ = ["Conduit", "PredictionError"]
