"""Pooling and convolution for the built-in convolutional networks, fast on XLA:CPU.

Each gives the values and gradients of its Flax or ``lax`` counterpart (tested) by a route XLA:CPU
runs faster (``benchmarks/cnn_speed.py``; the measurements are in docs/PERFORMANCE.md):

- :func:`max_pool`: ``nn.max_pool(x, window, stride, "SAME")``. Forward, the maximum of the
  window's strided slices, keeping which slice held it; backward, each output's gradient goes
  back to that element (the first maximum, as ``nn.max_pool`` gives it) by strided pads, with
  no select-and-scatter.
- :func:`conv_general_dilated`: ``lax.conv_general_dilated`` for ``nn.Conv(...,
  conv_general_dilated=...)``. A convolution of a single input channel (a grey image's first
  layer) runs forward as a sum of the kernel's shifted, scaled copies of the input, one fused
  loop. Its backward pass, and every other convolution, are ``lax``'s own. Not for more
  channels: in a training step XLA recomputes the fused taps inside each of their consumers.

A user's model can use both: ``nn.Conv(64, (5, 5), conv_general_dilated=layers.conv_general_dilated)``
and ``layers.max_pool(x, 2, 2)``; the parameters are those of ``nn.Conv``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

SHIFTED_MAX_CHANNELS = 1  # input channels up to which a convolution runs forward as shifted copies


def _same_pads(n: int, window: int, stride: int) -> tuple[tuple[int, int], int]:
    out = -(-n // stride)
    total = max((out - 1) * stride + window - n, 0)
    return (total // 2, total - total // 2), out


def _window_slices(x_BxHxWxC, window: int, stride: int):
    """The ``window**2`` strided slices of the input padded with -inf, one per position in the window."""
    _, h, w, _ = x_BxHxWxC.shape
    (ph, oh), (pw, ow) = _same_pads(h, window, stride), _same_pads(w, window, stride)
    x = jnp.pad(x_BxHxWxC, ((0, 0), ph, pw, (0, 0)), constant_values=-jnp.inf)
    return [x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            for i in range(window) for j in range(window)]


def _max_pool_fwd(x_BxHxWxC, window: int, stride: int):
    slices = _window_slices(x_BxHxWxC, window, stride)
    best, first_K = slices[0], jnp.zeros(slices[0].shape, jnp.int8)
    for k, s in enumerate(slices[1:], start=1):
        later = s > best  # strictly: a tie stays with the earlier position, as in nn.max_pool
        best, first_K = jnp.where(later, s, best), jnp.where(later, jnp.int8(k), first_K)
    return best, (first_K, x_BxHxWxC.shape)


def _max_pool_bwd(window: int, stride: int, residuals, g):
    first_K, (_, h, w, _) = residuals
    (ph, oh), (pw, ow) = _same_pads(h, window, stride), _same_pads(w, window, stride)
    span_h, span_w = stride * (oh - 1) + 1, stride * (ow - 1) + 1
    hp, wp = h + sum(ph), w + sum(pw)
    zero = jnp.zeros((), g.dtype)
    dx = 0
    for k in range(window * window):
        i, j = divmod(k, window)
        part = jnp.where(first_K == k, g, zero)  # spread back onto the padded input's lattice
        dx = dx + lax.pad(part, zero, ((0, 0, 0), (i, hp - i - span_h, stride - 1),
                                       (j, wp - j - span_w, stride - 1), (0, 0, 0)))
    return (dx[:, ph[0]:ph[0] + h, pw[0]:pw[0] + w],)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x_BxHxWxC, window: int, stride: int):
    """``nn.max_pool(x, (window, window), (stride, stride), "SAME")``, gradients included (a
    window's equal maxima: the first takes the gradient, as there)."""
    return _max_pool_fwd(x_BxHxWxC, window, stride)[0]


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def _shifted_sum(x_BxHxWxC, w_HxWxIxO, pads):
    """A stride-1 convolution as the sum of the kernel's taps: each a shifted input channel times
    that tap's row of the kernel (one loop over the output, fused by XLA)."""
    kh, kw, ci, _ = w_HxWxIxO.shape
    x = jnp.pad(x_BxHxWxC, ((0, 0), pads[0], pads[1], (0, 0)))
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = 0
    for i in range(kh):
        for j in range(kw):
            for c in range(ci):
                out = out + x[:, i:i + oh, j:j + ow, c:c + 1] * w_HxWxIxO[i, j, c][None, None, None, :]
    return out


def _lax_conv(x, w, pads):
    return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _shifted_conv(x_BxHxWxC, w_HxWxIxO, pads):
    return _shifted_sum(x_BxHxWxC, w_HxWxIxO, pads)


def _shifted_conv_fwd(x, w, pads):
    return _shifted_sum(x, w, pads), (x, w)


def _shifted_conv_bwd(pads, residuals, g):
    x, w = residuals
    return jax.vjp(lambda x, w: _lax_conv(x, w, pads), x, w)[1](g)


_shifted_conv.defvjp(_shifted_conv_fwd, _shifted_conv_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated`` with its arguments; a stride-1, undilated, ungrouped NHWC
    convolution of at most :data:`SHIFTED_MAX_CHANNELS` input channels runs forward as shifted
    copies (the same numbers to float32 rounding), every other as ``lax``'s."""
    simple = (lhs.ndim == 4 and tuple(window_strides) == (1, 1) and feature_group_count == 1 and not kwargs
              and all(d is None or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation))
              and dimension_numbers is not None and tuple(map(tuple, lax.conv_dimension_numbers(
                  lhs.shape, rhs.shape, dimension_numbers))) == ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
              and rhs.shape[2] <= SHIFTED_MAX_CHANNELS)
    if simple and isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1), padding)
    if not simple or any(int(p) < 0 for pair in padding for p in pair):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, precision=precision, **kwargs)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _shifted_conv(lhs, rhs, pads)
