"""The upscaler against Real-ESRGAN's own inference: the real animevideov3 weights on a real photo give the numbers
its `RealESRGANer` gave (tests/reference/*.json says how they were computed), and networks whose input must be a
multiple of 2 or 4 (RRDBNet x2 and x1: pixel-unshuffle) take any size, padded and cropped as the reference does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from optional_deps import missing
from PIL import Image

from svd_demo.engine.upscale import DEFAULT_TILE, load_upscaler, upscale_frame
from svd_demo.engine.upscale.networks import RRDBNet, SRVGGNetCompact

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / ".." / "shared" / "weights" / "realesr-animevideov3.pth"
REFERENCE = json.loads((ROOT / "tests" / "reference" / "realesrgan_animevideov3_coffee.json").read_text())



@pytest.fixture(scope="module")
def animevideov3():
    if not WEIGHTS.is_file():  # CI has ../shared beside its checkout: there the test must run
        missing(f"the real checkpoint is not at {WEIGHTS} (the project's shared/weights, beside the checkout)")
    return load_upscaler(str(WEIGHTS))


def test_the_real_checkpoint_loads_strictly_into_the_published_architecture(animevideov3):
    """load_upscaler loads with strict=True; the sizes are the published ones (64 features, 16 convolutions, x4)."""
    assert type(animevideov3.network) is SRVGGNetCompact
    assert animevideov3.architecture.options == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16,
                                                 "upscale": 4}
    assert animevideov3.parameters == sum(p.numel() for p in SRVGGNetCompact().parameters())


@pytest.mark.parametrize("factor", [4, 2])
def test_real_weights_on_a_real_photo_give_real_esrgans_own_output(animevideov3, factor):
    photo = Image.open(ROOT / REFERENCE["photo"]).convert("RGB").crop(tuple(REFERENCE["box"]))
    out = upscale_frame(animevideov3, np.asarray(photo), factor)  # the default tile: this crop is one tile
    expected = REFERENCE[f"x{factor}"]
    assert list(out.shape) == expected["shape"]
    np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), expected["mean"], atol=0.02)
    grid = out[::expected["step"], ::expected["step"]].astype(int)
    diff = np.abs(grid - np.array(expected["grid"]))
    # Equal to the bit on the machine that computed them; another CPU's convolutions may flip a rounding here and
    # there, never more. (A 2x made of 2x2 block averages would differ by up to 9 levels at 43 % of the pixels.)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def _saved(tmp_path: Path, network: torch.nn.Module, name: str) -> str:
    with torch.no_grad():  # outputs in the 0-1 range, so the values compared are not all clipped
        last = network.conv_last if isinstance(network, RRDBNet) else network.body[-1]
        last.weight.mul_(10.0 if isinstance(network, RRDBNet) else 0.5)
        last.bias.fill_(0.5 if isinstance(network, RRDBNet) else 0.0)
    path = tmp_path / name
    torch.save({"params_ema": network.state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module")
def every_scale(tmp_path_factory):
    """Tiny random-weight networks of every scale the official checkpoints have, loaded by the app's loader."""
    folder = tmp_path_factory.mktemp("scales")
    torch.manual_seed(0)
    return {
        ("rrdb", 1): load_upscaler(_saved(folder, RRDBNet(scale=1, num_feat=8, num_block=1, num_grow_ch=4), "x1.pth")),
        ("rrdb", 2): load_upscaler(_saved(folder, RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4), "x2.pth")),
        ("rrdb", 4): load_upscaler(_saved(folder, RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=4), "x4.pth")),
        ("srvgg", 4): load_upscaler(_saved(folder, SRVGGNetCompact(num_feat=8, num_conv=2), "s4.pth")),
    }


def _odd(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("key", [("rrdb", 1), ("rrdb", 2), ("rrdb", 4), ("srvgg", 4)])
@pytest.mark.parametrize("size", [(33, 47), (64, 1002)])
def test_every_scale_takes_odd_sizes_whole_and_in_default_tiles(every_scale, key, size):
    """47x33 is odd both ways; 1002x64 in the default 512-px tiles made a 525-px-wide tile before (RRDBNet x2
    could not pixel-unshuffle it). The whole frame equals the network run on the frame reflect-padded at the right
    and bottom to the multiple and cropped after (RealESRGANer's mod pad); tiles equal it within rounding."""
    upscaler = every_scale[key]
    scale, multiple = upscaler.scale, upscaler.architecture.input_multiple
    assert multiple == {1: 4, 2: 2, 4: 1}[scale]
    frame = _odd(*size)
    height, width = size
    whole = upscale_frame(upscaler, frame, scale, tile=0)
    tiled = upscale_frame(upscaler, frame, scale, tile=DEFAULT_TILE)
    assert whole.shape == tiled.shape == (height * scale, width * scale, 3)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    padded = F.pad(x, (0, -width % multiple, 0, -height % multiple), mode="reflect")
    with torch.no_grad():
        expected = upscaler.network(padded)[..., :height * scale, :width * scale]
    expected = expected.clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(whole, expected)
    assert np.abs(tiled.astype(int) - whole).max() <= 1


def test_two_x_from_an_x2_network_on_an_odd_frame(every_scale):
    out = upscale_frame(every_scale[("rrdb", 2)], _odd(33, 47), 2)
    assert out.shape == (66, 94, 3) and out.std() > 5
