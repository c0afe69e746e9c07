"""PNG uploads → 8x8 rows of ink values (0..16), the digits model's features."""

import numpy as np
from PIL import Image


def pre_process(data, files):
    if not files:
        raise ValueError("upload one or more PNG images of digits as file parts")
    rows = []
    for upload in files:
        image = Image.open(upload).convert("L").resize((8, 8), Image.BILINEAR)
        rows.append(np.asarray(image, dtype=np.float64).ravel() * 16 / 255)
    return np.stack(rows)


pre_process.thread_safe = True  # no shared state: requests decode their images at once (else one at a time)


def post_process(out):
    return [int(label) for label in out]


post_process.thread_safe = True
