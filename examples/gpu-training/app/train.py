"""Minimal deterministic training step (illustration for the GPU example)."""
import torch

torch.use_deterministic_algorithms(True)
torch.manual_seed(0)
model = torch.nn.Linear(16, 1).cuda()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(64, 16, device="cuda"), torch.randn(64, 1, device="cuda")
for _ in range(10):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
print(f"loss {loss.item():.6f} on {torch.cuda.get_device_name()}")
