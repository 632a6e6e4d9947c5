"""MXFP4 (OCP microscaling FP4) as gpt-oss checkpoints store their experts: blocks of 32 values
along a row, each an E2M1 nibble (low nibble first), one E8M0 scale byte per block (2^(s - 127))."""
import numpy as np

FP4 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
               dtype=np.float32)


def quantize(w):
    """w [..., cols] (cols a multiple of 32) -> (blocks uint8 [..., cols/32, 16], scales uint8
    [..., cols/32]): each block's scale puts its largest magnitude at or below 6, values round to
    the nearest E2M1 code."""
    *prefix, cols = w.shape
    assert cols % 32 == 0
    g = w.astype(np.float32).reshape(*prefix, cols // 32, 32)
    amax = np.abs(g).max(axis=-1, keepdims=True)
    exp = np.where(amax > 0, np.ceil(np.log2(np.maximum(amax, 1e-30) / 6.0)), -127)
    exp = np.clip(exp, -127, 127)
    scaled = g / np.exp2(exp)
    codes = np.abs(scaled[..., None] - FP4[None, :]).argmin(axis=-1).astype(np.uint8)
    # -0.0 and +0.0 both decode to zero; keep +0.0's code
    codes = np.where(codes == 8, 0, codes)
    blocks = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    return blocks, (exp[..., 0] + 127).astype(np.uint8)


def dequantize(blocks, scales):
    """The inverse: [..., G, 16] nibbles and [..., G] scales -> float32 [..., G * 32]."""
    lo = FP4[blocks & 0x0F]
    hi = FP4[blocks >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    vals = vals * np.exp2(scales.astype(np.float32) - 127)[..., None]
    return vals.reshape(*blocks.shape[:-2], blocks.shape[-2] * 32)
