"""Make model.pkl and sample PNGs from the 8x8 digits data shipped with scikit-learn."""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.svm import SVC

here = Path(__file__).resolve().parent
digits = load_digits()
model = SVC(gamma=0.001).fit(digits.data, digits.target)
(here / "model.pkl").write_bytes(pickle.dumps(model))

samples = here / "samples"
samples.mkdir(exist_ok=True)
for digit, name in ((3, "three"), (7, "seven")):
    pixels = digits.images[list(digits.target).index(digit)]  # 0 (paper) .. 16 (ink)
    image = Image.fromarray((pixels * 255 / 16).astype(np.uint8), mode="L")
    image.save(samples / f"{name}.png")
    image.resize((256, 256), Image.NEAREST).save(samples / f"{name}-256.png")
print(f"wrote {here / 'model.pkl'} and {samples}/*.png")
