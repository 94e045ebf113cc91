import logging

import paddle
import pytest

from paddlevideo.tasks.amp import AmpContext


def test_amp_on_a_cpu_without_bf16_says_so_and_trains_in_float32(caplog, monkeypatch):
    monkeypatch.setattr(paddle.amp, "is_bfloat16_supported", lambda *a: False, raising=False)
    with caplog.at_level(logging.WARNING, logger="paddlevideo"):
        amp = AmpContext(enabled=True, level="O1")
    assert not amp.enabled and amp.scaler is None
    assert "supports neither float16 (GPU) nor bfloat16" in caplog.text
    layer = paddle.nn.Linear(2, 2)
    with amp.autocast():
        out = layer(paddle.ones([1, 2]))
    assert out.dtype == paddle.float32


def test_bf16_where_supported(monkeypatch):
    monkeypatch.setattr(paddle.amp, "is_bfloat16_supported", lambda *a: True, raising=False)
    amp = AmpContext(enabled=True, level="O2")
    assert amp.enabled and amp.dtype == "bfloat16" and amp.scaler is None


def test_amp_level_is_checked():
    with pytest.raises(ValueError, match="O1 or O2"):
        AmpContext(enabled=True, level="O3")
