"""Feature caching across denoising steps for the SVD UNet (DeepCache, Ma et al. 2023; our own hooks).

Between neighbouring denoising steps the UNet's deep, low-resolution features barely change; the shallow layers at
full latent resolution are what follow the input closely. So on a *full* step the whole UNet runs and the feature
that enters the shallow part of the up path is kept; on the steps in between only the shallow path runs and is fed
the kept feature. The skip connections of the shallow layers are fresh on every step, which is what keeps the
result close to the plain run.

Which layers are shallow is DeepCache's `cache_branch`, counted as its SVD UNet counts skip branches: each down block
has `layers` (2) resnet(+attention) layers and a downsampler, so branch b is layer m = b % (layers + 1) of down
block k = b // (layers + 1) (m = layers: its downsampler). A reused step runs `conv_in`, the down blocks before k,
block k up to layer m, then the matching up block from the layer that takes that layer's skip connection (for
m < layers: up block levels-1-k from layer layers-1-m; for the downsampler: up block levels-2-k, its last layer), the
up blocks after it, and `conv_out`. Branch 0 recomputes the least: `conv_in`, the first layer of the first down block
and the last two of the last up block. Every `interval`-th step runs in full, the first included. DeepCache's SVD
example, the setting of its published SVD-XT speed-up (1.7x), is interval 3, branch 0: the defaults here.

It is done with diffusers' hook registry (the mechanism its own caches and group offloading use) on the skipped
blocks and layers, installed for one generation by `feature_cache(...)` and removed when it ends, also when it
fails: the UNet's weights and code are never changed, so the next run without caching is a plain run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from svd_demo.core.settings import FEATURE_CACHE_BRANCH, FEATURE_CACHE_INTERVAL

HOOK_NAME = "svd_demo_feature_cache"
# The defaults are the app's settings (`--feature-cache-interval`, `--feature-cache-branch`), declared in core.
DEFAULT_INTERVAL, DEFAULT_BRANCH = FEATURE_CACHE_INTERVAL, FEATURE_CACHE_BRANCH


@dataclass
class CacheStats:
    """What one cached generation did; shared by the hooks of one `feature_cache` block."""

    interval: int
    branch: int
    full_steps: int = 0
    reused_steps: int = 0
    reuse: bool = False  # the UNet call in progress skips the deep part
    feature: Any = None  # what entered the shallow up path on the last full step
    input_shape: tuple[int, ...] | None = None  # the `conv_in` input it was computed for
    down_outputs: dict[int, int] = field(default_factory=dict)  # skip connections each skipped down block returns

    def as_record(self) -> dict[str, int]:
        """For the sidecar: the setting, and how many steps ran the whole UNet and how many reused its features."""
        return {"interval": self.interval, "branch": self.branch, "full_steps": self.full_steps,
                "reused_steps": self.reused_steps}


def _hook_classes() -> tuple[type, type]:
    """The two hooks, built on diffusers' ModelHook (imported here: importing svd_demo must not import torch)."""
    from diffusers.hooks import ModelHook

    class StepHook(ModelHook):
        """On `conv_in`, which runs once at the start of every UNet call: decides whether this call reuses."""

        def __init__(self, stats: CacheStats) -> None:
            super().__init__()
            self.stats = stats

        def pre_forward(self, module: Any, *args: Any, **kwargs: Any) -> tuple[tuple[Any], dict[str, Any]]:
            s = self.stats
            sample = args[0] if args else kwargs["input"]
            step = s.full_steps + s.reused_steps
            # Reuse only what was computed for the same shape (batch x frames, size): a new shape is a full step.
            s.reuse = s.feature is not None and step % s.interval != 0 and tuple(sample.shape) == s.input_shape
            if s.reuse:
                s.reused_steps += 1
            else:
                s.full_steps += 1
                s.input_shape = tuple(sample.shape)
            return args, kwargs

    class SkipHook(ModelHook):
        """On a deep block or layer: runs it on full steps (keeping its output if the shallow up path starts after
        it), skips it otherwise.

        A skipped block or layer returns placeholders of the right structure, at the resolution it was given: the
        UNet's forward still unpacks a down block's skip connections and hands them to the matching (also skipped)
        up layers, which ignore them. The layer that keeps the feature returns it instead.
        """

        def __init__(self, stats: CacheStats, kind: str, index: int, keeps_feature: bool = False) -> None:
            super().__init__()
            self.stats, self.kind, self.index, self.keeps_feature = stats, kind, index, keeps_feature

        def new_forward(self, module: Any, *args: Any, **kwargs: Any) -> Any:
            s = self.stats
            if not s.reuse:
                output = self.fn_ref.original_forward(*args, **kwargs)
                if self.kind == "down":
                    s.down_outputs[self.index] = len(output[1])
                if self.keeps_feature:
                    s.feature = output
                return output
            if self.keeps_feature:
                return s.feature
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            if self.kind == "down":
                return hidden, (hidden,) * s.down_outputs[self.index]
            if self.kind == "attention" and not kwargs.get("return_dict", True):
                return (hidden,)  # the blocks take `attn(..., return_dict=False)[0]`
            return hidden

    return StepHook, SkipHook


def _check(unet: Any, interval: int, branch: int) -> tuple[int, int]:
    """The settings against the UNet; the highest branch it has and its layers per down block."""
    if not all(hasattr(unet, name) for name in ("conv_in", "down_blocks", "mid_block", "up_blocks")):
        raise ValueError(f"Feature caching needs a spatio-temporal UNet (SVD's); got {type(unet).__name__}.")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"Feature caching `interval` must be a whole number of at least 1; got {interval!r}.")
    layers, levels = len(unet.down_blocks[0].resnets), len(unet.down_blocks)
    highest = (layers + 1) * levels - 2  # the last down block has no downsampler
    if isinstance(branch, bool) or not isinstance(branch, int) or not 0 <= branch <= highest:
        raise ValueError(f"Feature caching `branch` must be from 0 to {highest} for this UNet ({levels} levels of "
                         f"{layers} layers); got {branch!r}. It is the feature_cache_branch setting "
                         "(--feature-cache-branch, SVD_DEMO_FEATURE_CACHE_BRANCH).")
    return highest, layers


def _plan(unet: Any, branch: int, layers: int) -> tuple[list[tuple[Any, str, int]], Any]:
    """(module, kind, down block index) for every block and layer a reused step skips, and the one whose output
    is the kept feature (DeepCache's `exist_module_idx` / `enter_module_idx`)."""
    levels = len(unet.down_blocks)
    block, layer = divmod(branch, layers + 1)
    skipped: list[tuple[Any, str, int]] = []
    down = unet.down_blocks[block]
    for i in range(layer + 1, layers):  # the down block's layers after the branch point
        skipped.append((down.resnets[i], "layer", 0))
        if getattr(down, "attentions", None) is not None:
            skipped.append((down.attentions[i], "attention", 0))
    if layer < layers and down.downsamplers is not None:
        skipped += [(module, "layer", 0) for module in down.downsamplers]
    skipped += [(b, "down", i) for i, b in enumerate(unet.down_blocks) if i > block]
    skipped.append((unet.mid_block, "mid", 0))
    # The up layer that takes the branch point's skip connection, and the layers of its block before it.
    up_index, enter = (levels - 1 - block, layers - 1 - layer) if layer < layers else (levels - 2 - block, layers)
    skipped += [(b, "up", i) for i, b in enumerate(unet.up_blocks) if i < up_index]
    up = unet.up_blocks[up_index]
    for i in range(enter):
        skipped.append((up.resnets[i], "layer", 0))
        if getattr(up, "attentions", None) is not None:
            skipped.append((up.attentions[i], "attention", 0))
    keeper = skipped[-1][0]  # the last one skipped: its output enters the shallow up path
    return skipped, keeper


@contextmanager
def feature_cache(unet: Any, interval: int = DEFAULT_INTERVAL, branch: int = DEFAULT_BRANCH) -> Iterator[CacheStats]:
    """Within the block, every `interval`-th UNet call runs in full and the others reuse its deep features from
    skip branch `branch` down (DeepCache's numbering, see the module's docstring).

    Meant around exactly one generation (the step count starts at its first UNet call); the hooks and the kept
    feature are gone when the block ends. The kept feature costs one activation of that layer's output in memory
    (for SVD-XT at 1024x576, 25 frames, fp16 with guidance, branch 0: 320 channels at full latent resolution,
    about 0.3 GB).
    """
    _, layers = _check(unet, interval, branch)
    from diffusers.hooks import HookRegistry

    step_hook, skip_hook = _hook_classes()
    stats = CacheStats(interval=interval, branch=branch)
    skipped, keeper = _plan(unet, branch, layers)
    hooks: list[tuple[Any, Any]] = [(unet.conv_in, step_hook(stats))]
    hooks += [(module, skip_hook(stats, kind, index, keeps_feature=module is keeper))
              for module, kind, index in skipped]
    registered: list[Any] = []
    try:
        for module, hook in hooks:
            registry = HookRegistry.check_if_exists_or_initialize(module)
            registry.register_hook(hook, HOOK_NAME)
            registered.append(registry)
        yield stats
    finally:
        for registry in registered:
            registry.remove_hook(HOOK_NAME, recurse=False)
        stats.feature = None  # the kept activation is not needed past the generation
