"""The seed's digits model for the Python API's tests, made for real in a child process.

The seed's `pre_process` hands the model `{label: PIL image}`, so the model is a
scikit-learn Pipeline whose first step turns such a dict into rows of 8x8 ink
values, then an SVC trained on scikit-learn's digits. The script runs as
`__main__`, so cloudpickle stores that first step's function by value and the
pickle loads in an image that has never seen this file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TRAIN = '''
import cloudpickle
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC


def images_to_rows(labelled):
    """{label: PIL image} (what the seed's pre_process returns) → rows of 8x8 ink values 0..16."""
    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(image.convert("L").resize((8, 8), Image.BOX), dtype=np.float64).ravel() * 16 / 255
                     for image in labelled.values()])


def picture(ink):
    """One 8x8 digit as a 64x64 grey PNG-able image."""
    return Image.fromarray(np.round(ink * 255 / 16).astype(np.uint8)).resize((64, 64), Image.NEAREST)


digits = load_digits()
pictures = {index: picture(ink) for index, ink in enumerate(digits.images)}
model = Pipeline([("pixels", FunctionTransformer(images_to_rows)), ("svc", SVC(gamma=0.001))])
model.fit(pictures, digits.target)
with open("digits.pkl", "wb") as handle:
    cloudpickle.dump(model, handle)
for name, digit in (("three", 3), ("seven", 7)):
    index = int(np.flatnonzero(digits.target == digit)[0])
    pictures[index].save(f"{name}.png")
    pictures[index].convert("RGB").save(f"{name}.jpg", quality=95)
'''


def make_digits(folder: Path) -> Path:
    """digits.pkl, three.png, seven.png (and .jpg copies) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", TRAIN], cwd=folder, check=True, capture_output=True, timeout=300)
    return folder
