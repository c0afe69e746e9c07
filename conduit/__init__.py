"""`import conduit`: the Python API under the product's name, in the seed's form.

    from conduit import Conduit, model_type, hardware, model_api_request

    conduit = Conduit("digits", "KEY", [(model_type.SKLEARN, "model.pkl", {"pre": pre_process})])
    conduit.load("./")
    conduit.run(data, [image])        # the server's envelope, in-process
    conduit.save()                    # conduit.yaml (+ notebook_hooks.py) for `conduit build`
    conduit.deploy()                  # validate → build → contract test → push → deploy

    Conduit.from_file("conduit.yaml").load().run([[5.1, 3.5, 1.4, 0.2]])
"""

from conduit_build.seed.api import Conduit, Deployment, PredictionError, hardware, model_api_request, model_type
from conduit_build.errors import ConduitError

__all__ = ["Conduit", "ConduitError", "Deployment", "PredictionError", "hardware", "model_api_request", "model_type"]
