"""Make model.onnx: a logistic regression on iris, converted with skl2onnx."""
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
X = X.astype("float32")
model = LogisticRegression(max_iter=500).fit(X, y)
onnx_model = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17)
with open("model.onnx", "wb") as handle:
    handle.write(onnx_model.SerializeToString())
