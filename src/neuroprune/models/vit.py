"""A small vision transformer (Dosovitskiy et al. 2021) for 28- or 32-pixel images.

Patch embedding (a stride-``patch`` conv), a learned position embedding, pre-norm encoder
blocks (``x + attn(norm(x))``, then ``x + mlp(norm(x))``) kept in an ``nn.ModuleList`` that
``forward`` loops over, a final LayerNorm, mean pooling over tokens and a linear head.
Everything traces with torch.fx (no shape reads, no control flow on values), so depth
pruning finds the residual stream's cuts: whole blocks, bridged by ``nn.Identity``.

Attention scores (``q @ k^T``, ``attn @ v``) are functional matmuls, which ``count_macs``
does not count (see :mod:`neuroprune.metrics.macs`): per sample and block they cost
``2 * tokens^2 * dim`` more multiply-accumulates than it reports.
"""

from __future__ import annotations

import torch
from torch import nn

from ._registry import register_model
from ._width import scaled


class Attention(nn.Module):
    """Multi-head self-attention over (N, T, D) tokens with one fused qkv projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"the token width {dim} must divide into {heads} heads")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, T, D) -> (N, T, 3, H, D/H) -> (3, N, H, T, D/H)
        qkv = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)  # (N, H, T, T)
        return self.proj((attention @ v).transpose(1, 2).flatten(2))  # (N, T, D)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """Patch embedding, position embedding, encoder blocks, LayerNorm, mean over tokens, head.

    Args:
        in_channels: image channels.
        image_size: image side; a multiple of ``patch``.
        num_classes: outputs of the head.
        dim: token width.
        depth: encoder blocks.
        heads: attention heads.
        patch: patch side in pixels.
        mlp_ratio: hidden width of each block's MLP, relative to ``dim``.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, dim: int, depth: int, heads: int,
                 patch: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of the patch size {patch}")
        tokens = (image_size // patch) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, dim * mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, C, H, W) -> (N, D, H/p, W/p) -> (N, T, D)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))  # (N, T, D) -> (N, D) -> (N, classes)


@register_model("vit_tiny", "Small vision transformer: 4x4 patches, 4 pre-norm blocks of width 64, 4 heads")
def vit_tiny(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, width: float = 1.0,
             depth: int = 4, patch: int = 4) -> VisionTransformer:
    """A 4-block vision transformer for small images; ``width`` scales the token width 64 (4 heads)."""
    heads = 4
    dim = max(heads, scaled(64, width) // heads * heads)  # a multiple of the heads
    return VisionTransformer(in_channels, image_size, num_classes, dim, depth, heads, patch)
