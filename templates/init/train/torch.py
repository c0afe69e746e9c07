"""Make model.pt: a small TorchScript network trained briefly on iris."""
import torch
from sklearn.datasets import load_iris

X, y = load_iris(return_X_y=True)
X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3), torch.nn.Softmax(dim=1))
optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
for _ in range(200):
    optimizer.zero_grad()
    loss = torch.nn.functional.nll_loss(torch.log(net(X)), y)
    loss.backward()
    optimizer.step()
torch.jit.script(net.eval()).save("model.pt")
