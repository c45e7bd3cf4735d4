"""Lightning attention inside your own layer: a linear-attention block with per-head decay, trained for a few steps,
then decoded token by token with the recurrent step (same numbers as the blocked form).

Run: python examples/lightning_in_your_layer.py
"""

import torch
from torch import nn

from lumos.ops import lightning_attention, lightning_attention_step


class DecayAttention(nn.Module):
    """Multi-head linear attention with MiniMax's per-head decay λ_h = exp(−slope_h); (B, L, hidden) -> same."""

    def __init__(self, hidden: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)
        # MiniMax's slopes: 2^(-8 i / H) for head i = 1..H (steeper decay for earlier heads)
        self.register_buffer("slope", torch.tensor([2 ** (-8 * (i + 1) / heads) for i in range(heads)]))

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        B, L, _ = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return tuple(t.view(B, L, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, H, L, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        o, _ = lightning_attention(torch.relu(q), torch.relu(k), v, self.slope)       # blocked form, (B, H, L, D)
        return self.out(o.transpose(1, 2).reshape(x.shape))

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Token by token with a (B, H, D, D) state: the recurrent form used for generation."""
        q, k, v = self.split(x)
        state, outs = None, []
        for t in range(x.shape[1]):
            o, state = lightning_attention_step(torch.relu(q[:, :, t:t + 1]), torch.relu(k[:, :, t:t + 1]),
                                                v[:, :, t:t + 1], self.slope, state)
            outs.append(o)
        return self.out(torch.cat(outs, dim=2).transpose(1, 2).reshape(x.shape))


def main() -> None:
    torch.manual_seed(0)
    layer = DecayAttention()
    opt = torch.optim.AdamW(layer.parameters(), lr=3e-3)
    x = torch.randn(8, 32, 64)
    target = torch.roll(x, shifts=1, dims=1)  # a toy task: reproduce the previous token
    for step in range(30):
        loss = nn.functional.mse_loss(layer(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            print(f"step {step:2d}  loss {loss.item():.4f}")
    with torch.no_grad():
        blocked = layer(x[:2])
    recurrent = layer.decode(x[:2])
    diff = (blocked - recurrent).abs().max().item()
    print(f"blocked vs token-by-token decode: max |diff| = {diff:.2e}")
    assert diff < 1e-4


if __name__ == "__main__":
    main()
