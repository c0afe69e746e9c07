"""Make model.pkl: a scaler fitted to the iris data shipped with scikit-learn."""
import pickle

from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler

X, _ = load_iris(return_X_y=True)
with open("model.pkl", "wb") as handle:
    pickle.dump(StandardScaler().fit(X), handle)
