"""Make scaler.pkl and model.pkl: a two-stage flow on the iris data shipped with scikit-learn."""

import pickle
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

here = Path(__file__).resolve().parent
X, y = load_iris(return_X_y=True)
scaler = StandardScaler().fit(X)
model = LogisticRegression(max_iter=1000).fit(scaler.transform(X), y)
(here / "scaler.pkl").write_bytes(pickle.dumps(scaler))
(here / "model.pkl").write_bytes(pickle.dumps(model))
print(f"wrote {here / 'scaler.pkl'} and {here / 'model.pkl'}")
