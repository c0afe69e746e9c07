"""(c) The same models served by BentoML 1.4, written the way its docs show:
one @bentoml.service per model, a sync @bentoml.api (run in BentoML's thread
pool), one worker, no access log. Runs inside bench/.venvs/bentoml.

    BENCH_MODEL=examples/iris/model.pkl bentoml serve service:Iris --port P
"""

from __future__ import annotations

import os
import pickle

import bentoml
import numpy as np
from PIL import Image as PILImage
from PIL.Image import Image

CONFIG = {"workers": 1, "logging": {"access": {"enabled": False}}}


def load_model():
    with open(os.environ["BENCH_MODEL"], "rb") as handle:
        return pickle.load(handle)  # our own model file


@bentoml.service(**CONFIG)
class Iris:
    def __init__(self) -> None:
        self.model = load_model()

    @bentoml.api(route="/predict")
    def predict(self, data: list[list[float]], /) -> list[int]:  # root input: the body is the bare list
        return self.model.predict(np.asarray(data, dtype=np.float64)).tolist()


@bentoml.service(**CONFIG)
class Digits:
    def __init__(self) -> None:
        self.model = load_model()

    @bentoml.api(route="/predict")
    def predict(self, files: Image) -> list[int]:  # multipart file part named 'files'
        image = files.convert("L").resize((8, 8), PILImage.BILINEAR)
        row = np.asarray(image, dtype=np.float64).ravel() * 16 / 255
        return [int(label) for label in self.model.predict(row.reshape(1, -1))]
