"""Grouped convolution (``groups > 1``), NCHW outside and channels-last inside.

The C input channels split into G groups of C/G, and the O output channels
into G groups of O/G; output group g sees only input group g, through a
weight (O, C/G, kh, kw). conv.py's Conv2d stays the single-group node (its
default path untouched); this one is used only when groups > 1.

- Depthwise (C/G = 1, each output channel reads one input channel): no GEMM
  at all. The output is the sum over the kh*kw kernel offsets of the shifted
  (strided) input slice times that offset's per-channel weights, each term a
  broadcast over (N, OH, OW, G, O/G); backward is the same sum read backwards.
- Otherwise: one im2col matrix per group, (G, N*OH*OW, kh*kw*C/G), and one
  batched GEMM against the (G, kh*kw*C/G, O/G) weights.
"""
from __future__ import annotations

import numpy as np

from micrograd.kernels.gemm import matmul

from .autograd import Function
from .windows import (_crop, _nchw, _nhwc, _padded_nhwc, _pair, _window_slices, check_kernel_fits,
                      conv_output_size)


class GroupedConv2d(Function):
    """y[n, g*og + o] = sum_c x[n, g*cg + c] (*) w[g*og + o, c] + b[g*og + o];
    x (N, G*cg, H, W), w (G*og, cg, kh, kw), b (G*og,)."""

    fresh_grads = True

    def forward(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        sh, sw = _pair(stride)
        ph, pw = _pair(padding)
        dh, dw = _pair(dilation)
        o, cg, kh, kw = w.shape
        if x.ndim != 4 or x.shape[1] != cg * groups or o % groups:
            raise ValueError(f"conv2d with groups={groups} expects input (N, {cg * groups}, H, W) "
                             f"for weight {w.shape}, got {x.shape}")
        xp = _padded_nhwc(x, ph, pw)
        n, hp, wp, c = xp.shape
        check_kernel_fits(hp, wp, dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        oh = conv_output_size(hp, kh, sh, 0, dh)
        ow = conv_output_size(wp, kw, sw, 0, dw)
        g, og = groups, o // groups
        self.geometry = (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
        self.groups, self.padded_shape, self.has_bias = groups, xp.shape, b is not None
        self.slices = _window_slices(kh, kw, sh, sw, oh, ow, dh, dw)
        need_w = self.needs_input_grad[1]
        if cg == 1:
            # (kh, kw, G, og): each kernel offset's per-channel weights.
            self.w_offsets = w.reshape(g, og, kh, kw).transpose(2, 3, 0, 1)
            out = np.zeros((n, oh, ow, g, og), dtype=np.result_type(xp, w))
            for k, (rows, cols) in enumerate(self.slices):
                out += xp[:, rows, cols, :, None] * self.w_offsets[k // kw, k % kw]
            if need_w:
                self.xp = xp
        else:
            s0, s1, s2, s3 = xp.strides
            # (G, N, OH, OW, kh, kw, cg): group g's windows.
            windows = np.lib.stride_tricks.as_strided(
                xp, (g, n, oh, ow, kh, kw, cg),
                (s3 * cg, s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw, s3), writeable=False)
            cols = np.ascontiguousarray(windows).reshape(g, n * oh * ow, kh * kw * cg)
            # (G, kh*kw*cg, og), rows ordered as the im2col columns (i, j, c).
            self.wmat = w.reshape(g, og, cg, kh, kw).transpose(0, 3, 4, 2, 1).reshape(g, -1, og)
            out = matmul(cols, self.wmat)  # (G, N*OH*OW, og)
            out = out.reshape(g, n, oh, ow, og).transpose(1, 2, 3, 0, 4)
            if need_w:
                self.cols = cols
        if b is not None:
            out = out + b.reshape(g, og).astype(out.dtype, copy=False)
        return _nchw(np.ascontiguousarray(out).reshape(n, oh, ow, o))

    def backward(self, grad):
        kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = self.geometry
        g = self.groups
        n, o = grad.shape[:2]
        og = o // g
        go = _nhwc(grad).reshape(n, oh, ow, g, og)
        gx = gw = gb = None
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        if self.has_bias and self.needs_input_grad[2]:
            gb = go.sum(axis=(0, 1, 2)).reshape(o)
        if hasattr(self, "w_offsets"):
            if need_x:
                gx = np.zeros(self.padded_shape, dtype=go.dtype)
                for k, (rows, cols) in enumerate(self.slices):
                    gx[:, rows, cols] += np.einsum("nhwgm,gm->nhwg", go,
                                                   self.w_offsets[k // kw, k % kw])
            if need_w:
                gw = np.empty((kh, kw, g, og), dtype=go.dtype)
                for k, (rows, cols) in enumerate(self.slices):
                    gw[k // kw, k % kw] = np.einsum("nhwg,nhwgm->gm", self.xp[:, rows, cols], go)
                gw = gw.transpose(2, 3, 0, 1).reshape(o, 1, kh, kw)
        else:
            cg = self.padded_shape[3] // g
            g2 = np.ascontiguousarray(go.transpose(3, 0, 1, 2, 4)).reshape(g, -1, og)
            if need_w:
                gwm = matmul(self.cols.transpose(0, 2, 1), g2)  # (G, kh*kw*cg, og)
                gw = gwm.reshape(g, kh, kw, cg, og).transpose(0, 4, 3, 1, 2).reshape(o, cg, kh, kw)
            if need_x:
                gcols = matmul(g2, self.wmat.transpose(0, 2, 1))  # (G, N*OH*OW, kh*kw*cg)
                gcols = gcols.reshape(g, n, oh, ow, kh, kw, cg)
                gx = np.zeros(self.padded_shape, dtype=gcols.dtype)
                gxg = gx.reshape(gx.shape[:3] + (g, cg))
                for k, (rows, cols) in enumerate(self.slices):
                    part = gcols[:, :, :, :, k // kw, k % kw]  # (G, N, OH, OW, cg)
                    gxg[:, rows, cols] += part.transpose(1, 2, 3, 0, 4)
        if gx is not None:
            gx = _crop(gx, ph, pw)
        return (gx, gw, gb) if self.has_bias else (gx, gw)
