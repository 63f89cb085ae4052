"""Speed options: attention through PyTorch SDPA by default. Their frames against the plain path's are compared
end to end (tests/e2e/test_speed_options_frames.py)."""

from __future__ import annotations


def test_attention_uses_pytorch_sdpa_by_default(pipe):
    names = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
    assert names == {"AttnProcessor2_0"}
