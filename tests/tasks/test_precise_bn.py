import numpy as np
import paddle
import paddle.nn as nn

from paddlevideo.tasks.precise_bn import do_preciseBN


class TwoBN(nn.Layer):
    def __init__(self):
        super().__init__()
        self.bn1 = nn.BatchNorm3D(3)
        self.conv = nn.Conv3D(3, 2, 1)
        self.bn2 = nn.BatchNorm3D(2)

    def forward(self, batch, mode="train"):
        return self.bn2(self.conv(self.bn1(batch[0])))


def test_running_stats_become_the_mean_of_batch_stats():
    paddle.seed(0)
    model = TwoBN()
    batches = [[paddle.randn([4, 3, 2, 3, 3]) * (i + 1) + i] for i in range(6)]
    used = do_preciseBN(model, batches, num_iters=5)  # only the first 5 batches
    assert used == 5
    data = np.stack([b[0].numpy() for b in batches[:5]])
    expected_mean = data.mean(axis=(1, 3, 4, 5)).mean(axis=0)
    expected_var = data.var(axis=(1, 3, 4, 5)).mean(axis=0)  # BN keeps the biased variance
    np.testing.assert_allclose(model.bn1._mean.numpy(), expected_mean, rtol=1e-5)
    np.testing.assert_allclose(model.bn1._variance.numpy(), expected_var, rtol=1e-4)
    # momentum restored and the model left in its previous mode
    assert model.bn1._momentum == 0.9 and model.training


def test_later_layers_see_training_mode_outputs_of_earlier_ones():
    paddle.seed(1)
    model = TwoBN()
    model.eval()
    x = paddle.randn([4, 3, 2, 3, 3]) + 5
    do_preciseBN(model, [[x]], num_iters=1)
    assert not model.training  # left in eval mode as found
    got_mean = model.bn2._mean.numpy().copy()
    with paddle.no_grad():
        model.train()
        hidden = model.conv(model.bn1(x)).numpy()  # bn1 normalises with batch statistics
    np.testing.assert_allclose(got_mean, hidden.mean(axis=(0, 2, 3, 4)), rtol=1e-4, atol=1e-6)
