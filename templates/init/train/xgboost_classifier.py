"""Make model.json: a small XGBoost classifier on the iris data shipped with scikit-learn."""
from sklearn.datasets import load_iris
from xgboost import XGBClassifier

X, y = load_iris(return_X_y=True)
XGBClassifier(n_estimators=10, max_depth=3).fit(X, y).save_model("model.json")
