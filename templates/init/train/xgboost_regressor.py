"""Make model.json: a small XGBoost regressor on the diabetes data shipped with scikit-learn."""
from sklearn.datasets import load_diabetes
from xgboost import XGBRegressor

X, y = load_diabetes(return_X_y=True)
XGBRegressor(n_estimators=10, max_depth=3).fit(X[:, :4], y).save_model("model.json")
