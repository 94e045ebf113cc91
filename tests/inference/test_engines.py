from paddlevideo.inference.engines import slow_fast_order


def test_inputs_are_fed_by_name_when_the_model_uses_our_names():
    assert slow_fast_order(["fast_input", "slow_input"]) == ["slow_input", "fast_input"]
    assert slow_fast_order(["slow_input", "fast_input"]) == ["slow_input", "fast_input"]


def test_other_models_keep_their_own_input_order():
    assert slow_fast_order(["x0", "x1"]) == ["x0", "x1"]
