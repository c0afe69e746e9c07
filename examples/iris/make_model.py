"""Make model.pkl: a logistic regression on the iris data shipped with scikit-learn."""

import pickle
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

here = Path(__file__).resolve().parent
X, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=1000).fit(X, y)
(here / "model.pkl").write_bytes(pickle.dumps(model))
print(f"wrote {here / 'model.pkl'} (training accuracy {model.score(X, y):.3f})")
