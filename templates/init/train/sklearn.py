"""Make model.pkl: a logistic regression on the iris data shipped with scikit-learn."""
import pickle

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
with open("model.pkl", "wb") as handle:
    pickle.dump(LogisticRegression(max_iter=500).fit(X, y), handle)
