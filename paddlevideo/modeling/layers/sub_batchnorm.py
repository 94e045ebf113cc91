"""Sub-batch BatchNorm: batch statistics over N/k-clip sub-batches with one shared affine.

Multigrid training grows the per-process batch (up to 8× the base size) while keeping BN
statistics over ``bn_base_size`` clips, as the base shape would. The layer's persistable state is
exactly a plain ``BatchNorm3D``'s (``weight``, ``bias``, ``_mean``, ``_variance``), so a checkpoint
written during multigrid training loads into the normal model unchanged.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class SubBatchNorm3D(nn.Layer):
    """BatchNorm over ``num_splits`` sub-batches of an ``[N, C, T, H, W]`` input.

    In training, the batch is viewed as ``[N/k, C*k, T, H, W]`` so each of the ``k`` sub-batches
    gets its own statistics (kept in the non-persistable ``_split_mean``/``_split_variance``);
    the affine ``weight``/``bias`` is shared. In eval mode the plain ``_mean``/``_variance`` are
    used; :meth:`aggregate_stats` sets them from the split statistics.
    """

    def __init__(self, num_features: int, num_splits: int, momentum: float = 0.9,
                 epsilon: float = 1e-5, weight_attr=None, bias_attr=None) -> None:
        super().__init__()
        if num_splits < 1:
            raise ValueError(f"num_splits must be >= 1, got {num_splits}")
        self.num_features = num_features
        self.num_splits = num_splits
        self._momentum = momentum
        self._epsilon = epsilon
        self.weight = self.create_parameter(
            [num_features], attr=weight_attr,
            default_initializer=nn.initializer.Constant(1.0))
        self.bias = self.create_parameter(
            [num_features], attr=bias_attr, is_bias=True,
            default_initializer=nn.initializer.Constant(0.0))
        self.register_buffer("_mean", paddle.zeros([num_features]))
        self.register_buffer("_variance", paddle.ones([num_features]))
        self.register_buffer("_split_mean", paddle.zeros([num_features * num_splits]),
                             persistable=False)
        self.register_buffer("_split_variance", paddle.ones([num_features * num_splits]),
                             persistable=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.training:
            return F.batch_norm(x, self._mean, self._variance, self.weight, self.bias,
                               training=False, momentum=self._momentum, epsilon=self._epsilon,
                               data_format="NCDHW")
        n, k, c = x.shape[0], self.num_splits, self.num_features
        if isinstance(n, int) and n >= 0 and n % k:  # a static program checks nothing here
            raise ValueError(f"SubBatchNorm3D: batch size {n} is not divisible by "
                             f"num_splits {k}")
        # 0 keeps a dimension as it is, so T, H, W (and N) may be unknown in a static program
        x = paddle.reshape(x, [-1, c * k, 0, 0, 0])
        x = F.batch_norm(x, self._split_mean, self._split_variance, None, None, training=True,
                         momentum=self._momentum, epsilon=self._epsilon, data_format="NCDHW")
        x = paddle.reshape(x, [-1, c, 0, 0, 0])
        return x * self.weight.reshape([1, c, 1, 1, 1]) + self.bias.reshape([1, c, 1, 1, 1])

    @paddle.no_grad()
    def aggregate_stats(self) -> None:
        """Set the plain running statistics from the per-split ones.

        mean = average of the split means; variance = average of the split variances plus the
        variance of the split means (the law of total variance).
        """
        means = self._split_mean.reshape([self.num_splits, self.num_features])
        variances = self._split_variance.reshape([self.num_splits, self.num_features])
        mean = means.mean(axis=0)
        variance = variances.mean(axis=0) + ((means - mean) ** 2).mean(axis=0)
        paddle.assign(mean, self._mean)
        paddle.assign(variance, self._variance)

    @paddle.no_grad()
    def reset_split_stats(self) -> None:
        """Start the split statistics from the plain ones (after loading a checkpoint)."""
        paddle.assign(paddle.tile(self._mean, [self.num_splits]), self._split_mean)
        paddle.assign(paddle.tile(self._variance, [self.num_splits]), self._split_variance)

    def state_loaded(self) -> None:
        """Called by ``load_weights`` after new statistics were loaded."""
        self.reset_split_stats()


def aggregate_sub_bn_stats(model: nn.Layer) -> int:
    """Aggregate every :class:`SubBatchNorm3D` in ``model``; returns how many there were."""
    count = 0
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, SubBatchNorm3D):
            layer.aggregate_stats()
            count += 1
    return count


def reset_sub_bn_stats(model: nn.Layer) -> None:
    """Copy plain BN statistics into every sub-batch BN's split statistics (after loading)."""
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, SubBatchNorm3D):
            layer.reset_split_stats()
