"""The two Real-ESRGAN network classes, and which of them (with which sizes) a checkpoint's weights describe.

Written here rather than taken from `spandrel`: spandrel 0.4.2 imports torchvision at import time (for an
architecture we do not use), and torchvision must match the torch build exactly; no torchvision wheel for
torch 2.13.0+cpu could be installed on the project's CPU machines. Both classes follow the published definitions
(xinntao/Real-ESRGAN and BasicSR, BSD-3-Clause), with the same parameter names, so the official checkpoints load
with `load_state_dict(strict=True)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class SRVGGNetCompact(nn.Module):
    """A plain stack of 3x3 convolutions with PReLU, a pixel shuffle, and the nearest-upscaled input added back
    (realesr-animevideov3: 64 features, 16 convolutions, x4)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4) -> None:
        super().__init__()
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        # The network learns the residual over a nearest-neighbour upscale of its input.
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


class _ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x  # residual scaling 0.2, as trained


class _RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = _ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = _ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = _ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator as Real-ESRGAN uses it (RealESRGAN_x4plus: 64 features, 23 blocks, growth 32, x4).

    The x2 and x1 variants see a pixel-unshuffled input (4 or 16 times the channels at half or a quarter of the
    size) and upsample it 4x, as the official x2plus checkpoint was trained."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.scale = scale
        unshuffled = {4: 1, 2: 4, 1: 16}[scale]
        self.conv_first = nn.Conv2d(num_in_ch * unshuffled, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[_RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale < 4:
            x = F.pixel_unshuffle(x, 4 // self.scale)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


@dataclass(frozen=True)
class Architecture:
    """A network class and the sizes read from a checkpoint's weights."""

    name: str  # "SRVGGNetCompact" or "RRDBNet"
    scale: int  # the network's own factor
    options: dict

    @property
    def input_multiple(self) -> int:
        """What an input's height and width must be multiples of: RRDBNet x2 and x1 pixel-unshuffle their input by 2
        and 4 (SRVGGNetCompact and RRDBNet x4 take any size)."""
        return 4 // self.scale if self.name == "RRDBNet" else 1

    def build(self) -> nn.Module:
        cls = SRVGGNetCompact if self.name == "SRVGGNetCompact" else RRDBNet
        return cls(**self.options)


class UnknownArchitecture(ValueError):
    """The weights are not those of either network class (the message says what was found)."""


def _indices(keys: list[str], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for key in keys if (m := re.fullmatch(pattern, key))})


def detect(state: Mapping[str, torch.Tensor]) -> Architecture:
    """Which network (and sizes) `state` holds, from its parameter names and shapes; UnknownArchitecture if none."""
    keys = list(state)
    if "conv_first.weight" in state and "conv_last.weight" in state:
        first = state["conv_first.weight"]
        num_feat, in_channels = int(first.shape[0]), int(first.shape[1])
        num_out = int(state["conv_last.weight"].shape[0])
        scale = {num_out: 4, 4 * num_out: 2, 16 * num_out: 1}.get(in_channels)
        blocks = _indices(keys, r"body\.(\d+)\.rdb1\.conv1\.weight")
        if scale is None or not blocks:
            raise UnknownArchitecture(f"RRDBNet-like weights with {in_channels} input channels and {len(blocks)} "
                                      "blocks do not match any RRDBNet")
        grow = int(state["body.0.rdb1.conv1.weight"].shape[0])
        return Architecture("RRDBNet", scale, {"num_in_ch": num_out, "num_out_ch": num_out, "scale": scale,
                                               "num_feat": num_feat, "num_block": len(blocks), "num_grow_ch": grow})
    convs = [i for i in _indices(keys, r"body\.(\d+)\.weight") if state[f"body.{i}.weight"].ndim == 4]
    if convs and convs[0] == 0 and "body.1.weight" in state:
        if convs != list(range(0, 2 * len(convs) - 1, 2)):
            raise UnknownArchitecture("SRVGGNetCompact-like weights whose layers are not convolution/PReLU pairs "
                                      "(only the PReLU variant is supported)")
        first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
        num_in, num_feat = int(first.shape[1]), int(first.shape[0])
        upscale = round((int(last.shape[0]) / num_in) ** 0.5)
        if upscale < 1 or num_in * upscale * upscale != int(last.shape[0]):
            raise UnknownArchitecture(f"SRVGGNetCompact-like weights whose last layer has {int(last.shape[0])} "
                                      f"outputs for {num_in} channels: not a whole upscale factor")
        return Architecture("SRVGGNetCompact", upscale, {"num_in_ch": num_in, "num_out_ch": num_in,
                                                         "num_feat": num_feat, "num_conv": len(convs) - 2,
                                                         "upscale": upscale})
    shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
    raise UnknownArchitecture(f"its weights ({len(keys)} tensors: {shown}) are neither an SRVGGNetCompact nor an "
                              "RRDBNet")
