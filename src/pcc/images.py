"""PNG pictures of how well a model explains image data (Pillow).

`ll_grid(path, images, lls, ...)` draws the best and the worst explained test images (highest and
lowest log-likelihood), upscaled with crisp pixels, each labelled with its log-likelihood and bits per
dimension, above a histogram of all test log-likelihoods on which the two groups are marked. Ink is
drawn dark on a light background (the data's highest level is black).
"""
import math
from pathlib import Path

import numpy as np

from .errors import Error

__all__ = ["ll_grid"]

_BG = (250, 250, 248)
_TEXT = (30, 30, 30)
_MUTED = (110, 110, 110)
_GOOD = (46, 125, 50)
_BAD = (198, 40, 40)
_BAR = (160, 170, 185)


def _font(size):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)  # scalable (Pillow >= 10.1 with FreeType)
    except (TypeError, ValueError, OSError, ImportError, AttributeError):
        return ImageFont.load_default()


def _text_w(draw, text, font):
    l, _, r, _ = draw.textbbox((0, 0), text, font=font)
    return r - l


def _tile(img, num_cats, scale):
    from PIL import Image
    levels = max(num_cats - 1, 1)
    g = 255 - np.clip(np.asarray(img, dtype=np.float64) / levels, 0, 1) * 255
    tile = Image.fromarray(np.round(g).astype(np.uint8), mode="L").convert("RGB")
    return tile.resize((tile.width * scale, tile.height * scale), Image.NEAREST)


def ll_grid(path, images, lls, num_cats, title="", per_group=8, write=None):
    """Write a PNG to `path`: the `per_group` best and worst explained of `images` ([N, H, W] ints in
    0..num_cats-1) with their log-likelihoods `lls` ([N], nats), and a histogram of all `lls`.

    `write(path, save)` may wrap the file write (e.g. an atomic write); default: write directly.
    Returns the `PIL.Image`."""
    from PIL import Image, ImageDraw

    images = np.asarray(images)
    lls = np.asarray(lls, dtype=np.float64).reshape(-1)
    if images.ndim != 3 or len(images) != len(lls) or len(lls) == 0:
        raise Error(f"ll_grid: expected images [N, H, W] and lls [N] with N > 0, got {images.shape} "
                    f"and {lls.shape}")
    n, h, w = images.shape
    k = min(per_group, n)
    finite = np.where(np.isfinite(lls), lls, -np.inf)
    order = np.argsort(-finite, kind="stable")
    best, worst = order[:k], order[::-1][:k]
    dims = h * w
    scale = max(1, 96 // max(h, w))
    tw, th = w * scale, h * scale

    f_title, f_head, f_lab, f_small = _font(18), _font(15), _font(13), _font(11)
    pad, gap, label_h = 20, 14, 34
    cols = k
    grid_w = cols * tw + (cols - 1) * gap
    width = max(grid_w + 2 * pad, 560)
    x0 = (width - grid_w) // 2
    head_h, title_h, hist_h = 26, 34 if title else 0, 150
    height = pad + title_h + 2 * (head_h + th + label_h + 10) + hist_h + pad
    im = Image.new("RGB", (width, height), _BG)
    d = ImageDraw.Draw(im)

    y = pad
    if title:
        d.text((pad, y), title, fill=_TEXT, font=f_title)
        y += title_h
    mean = float(np.mean(lls[np.isfinite(lls)])) if np.isfinite(lls).any() else float("nan")
    for name, idx, color in (("best explained: highest log-likelihood", best, _GOOD),
                             ("worst explained: lowest log-likelihood", worst, _BAD)):
        d.text((x0, y), name, fill=color, font=f_head)
        y += head_h
        for j, i in enumerate(idx):
            x = x0 + j * (tw + gap)
            im.paste(_tile(images[i], num_cats, scale), (x, y))
            d.rectangle([x - 1, y - 1, x + tw, y + th], outline=color, width=1)
            ll = lls[i]
            lab = f"{ll:.1f} nats"
            sub = f"{-ll / (dims * math.log(2)):.3f} bpd" if np.isfinite(ll) else ""
            d.text((x + (tw - _text_w(d, lab, f_lab)) // 2, y + th + 4), lab, fill=_TEXT, font=f_lab)
            d.text((x + (tw - _text_w(d, sub, f_small)) // 2, y + th + 20), sub, fill=_MUTED, font=f_small)
        y += th + label_h + 10

    # Histogram of every test log-likelihood; the ranges of the two groups shaded.
    vals = lls[np.isfinite(lls)]
    hx0, hx1 = x0, x0 + grid_w
    hy0, hy1 = y + 22, y + hist_h - 24
    d.text((hx0, y), f"all {n} test images: log-likelihood histogram (mean {mean:.2f} nats, "
                     f"{-mean / (dims * math.log(2)):.3f} bpd)", fill=_TEXT, font=f_lab)
    if len(vals):
        lo, hi = float(vals.min()), float(vals.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 1, hi + 1
        bins = min(60, max(10, (hx1 - hx0) // 8))
        counts, edges = np.histogram(vals, bins=bins, range=(lo, hi))
        bw = (hx1 - hx0) / bins
        top = max(int(counts.max()), 1)
        xpos = lambda v: hx0 + (v - lo) / (hi - lo) * (hx1 - hx0)  # noqa: E731
        for sel, color in ((worst, _BAD), (best, _GOOD)):
            sv = lls[sel][np.isfinite(lls[sel])]
            if len(sv):
                d.rectangle([xpos(sv.min()) - 1, hy0, xpos(sv.max()) + 1, hy1],
                            fill=tuple(int(c * 0.18 + 255 * 0.82) for c in color))
        for b, c in enumerate(counts):
            if c:
                bh = (hy1 - hy0) * c / top
                d.rectangle([hx0 + b * bw + 1, hy1 - bh, hx0 + (b + 1) * bw - 1, hy1], fill=_BAR)
        mx = xpos(mean)
        d.line([mx, hy0, mx, hy1], fill=_TEXT, width=1)
        d.line([hx0, hy1, hx1, hy1], fill=_MUTED, width=1)
        d.text((hx0, hy1 + 4), f"{lo:.1f}", fill=_MUTED, font=f_small)
        s = f"{hi:.1f} nats"
        d.text((hx1 - _text_w(d, s, f_small), hy1 + 4), s, fill=_MUTED, font=f_small)
        s = "mean"
        d.text((mx - _text_w(d, s, f_small) // 2, hy1 + 4), s, fill=_TEXT, font=f_small)

    save = lambda p: im.save(p, format="PNG")  # noqa: E731
    if write is None:
        save(Path(path))
    else:
        write(Path(path), save)
    return im
