"""Strip-wise evaluation of a chain of local layers (convolutions, nearest upsampling, pointwise activations).

Full-resolution activations of a small network are memory-bound on a CPU: each layer streams tens of MB
through memory for a few FLOPs per byte. Running the chain one horizontal strip at a time keeps a strip's
intermediates in cache. Each strip gets exactly the input rows its outputs depend on, and zero rows where a
convolution's own padding would be, so the result is the whole-image result (bit for bit in our tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

POINTWISE = (nn.ReLU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.Identity)

# About the largest intermediate of one strip on a CPU: measured best on the 2-core Xeon of BENCHMARKS.md.
CPU_STRIP_BYTES = 8 << 20

Rows = tuple[int, int]


def default_strip_bytes(device: torch.device) -> int | None:
    """Strip size for ``device``: strips on the CPU, whole images on accelerators."""
    return CPU_STRIP_BYTES if device.type == "cpu" else None


def is_local(layer: nn.Module) -> bool:
    """Whether ``run_in_strips`` can split ``layer``: a square odd-kernel Conv2d with 'same' zero padding (any
    stride), a nearest Upsample by an integer factor, or a pointwise activation."""
    if isinstance(layer, nn.Conv2d):
        k, s = layer.kernel_size, layer.stride
        return (
            k[0] == k[1]
            and k[0] % 2 == 1
            and s[0] == s[1]
            and layer.padding == (k[0] // 2, k[0] // 2)
            and layer.dilation == (1, 1)
            and layer.padding_mode == "zeros"
        )
    if isinstance(layer, nn.Upsample):
        factor = layer.scale_factor
        return layer.mode == "nearest" and isinstance(factor, int | float) and float(factor) == int(factor)
    return isinstance(layer, POINTWISE)


def run_in_strips(layers: Sequence[nn.Module], x: torch.Tensor, strip_bytes: int | None) -> torch.Tensor:
    """``layers`` applied in order to ``x`` (N, C, H, W), one output strip at a time, each strip's largest
    intermediate about ``strip_bytes``. Whole-image when ``strip_bytes`` is None or a layer is not local."""
    if not layers:
        return x
    heights, channels = [x.shape[-2]], [x.shape[1]]
    for layer in layers:
        heights.append(_output_height(layer, heights[-1]))
        channels.append(layer.out_channels if isinstance(layer, nn.Conv2d) else channels[-1])
    out_height = heights[-1]
    strip = out_height
    if strip_bytes is not None and all(is_local(layer) for layer in layers):
        # Bytes per output row of the largest intermediate (widths scale as heights: strides are square).
        row_bytes = max(
            c * x.shape[-1] * h / heights[0] * h / out_height for c, h in zip(channels, heights, strict=True)
        )
        strip = max(1, int(strip_bytes / (row_bytes * x.element_size())))
    if strip >= out_height:
        for layer in layers:
            x = layer(x)
        return x

    out = None
    for start in range(0, out_height, strip):
        stop = min(start + strip, out_height)
        reads, request = [], (start, stop)
        for layer, height in zip(reversed(layers), reversed(heights[:-1]), strict=True):
            reads.insert(0, _input_rows(layer, request))
            request = _clip(reads[0], height)
        y = _rows_of(x, reads[0])
        for i, layer in enumerate(layers):
            last = i + 1 == len(layers)
            computed = (start, stop) if last else _clip(reads[i + 1], heights[i + 1])
            y = _apply(layer, y, reads[i][0], computed)
            if not last:  # zero rows where the next convolution pads
                y = _pad_rows(y, computed[0] - reads[i + 1][0], reads[i + 1][1] - computed[1])
        if out is None:
            layout = torch.channels_last if y.is_contiguous(memory_format=torch.channels_last) else None
            out = torch.empty(
                (*y.shape[:2], out_height, y.shape[-1]),
                dtype=y.dtype,
                device=y.device,
                memory_format=layout or torch.contiguous_format,
            )
        out[..., start:stop, :] = y
    return out


def _output_height(layer: nn.Module, height: int) -> int:
    if isinstance(layer, nn.Conv2d):
        k, s = layer.kernel_size[0], layer.stride[0]
        return (height + 2 * (k // 2) - k) // s + 1
    if isinstance(layer, nn.Upsample):
        return height * int(layer.scale_factor)
    return height


def _input_rows(layer: nn.Module, rows: Rows) -> Rows:
    """The input rows that output ``rows`` of ``layer`` read (a convolution's may lie in its zero padding)."""
    start, stop = rows
    if isinstance(layer, nn.Conv2d):
        k, s = layer.kernel_size[0], layer.stride[0]
        return start * s - k // 2, (stop - 1) * s - k // 2 + k
    if isinstance(layer, nn.Upsample):
        f = int(layer.scale_factor)
        return start // f, (stop - 1) // f + 1
    return rows


def _apply(layer: nn.Module, x: torch.Tensor, first_row: int, rows: Rows) -> torch.Tensor:
    """``layer`` on ``x`` (its input rows from ``first_row`` on, as ``_input_rows`` asked) -> exactly its
    output ``rows``."""
    if isinstance(layer, nn.Conv2d):  # rows already padded: pad the columns only
        return F.conv2d(x, layer.weight, layer.bias, layer.stride, (0, layer.padding[1]), 1, layer.groups)
    if isinstance(layer, nn.Upsample):
        f = int(layer.scale_factor)
        return F.interpolate(x, scale_factor=f, mode="nearest")[
            ..., rows[0] - first_row * f : rows[1] - first_row * f, :
        ]
    return layer(x)


def _clip(rows: Rows, height: int) -> Rows:
    return max(rows[0], 0), min(rows[1], height)


def _pad_rows(x: torch.Tensor, before: int, after: int) -> torch.Tensor:
    return F.pad(x, (0, 0, before, after)) if before or after else x


def _rows_of(x: torch.Tensor, rows: Rows) -> torch.Tensor:
    """``rows`` of ``x``, zero rows standing for those outside it."""
    lo, hi = _clip(rows, x.shape[-2])
    return _pad_rows(x[..., lo:hi, :], lo - rows[0], rows[1] - hi)
