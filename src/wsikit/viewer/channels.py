"""Channel compositing for multiplex and fluorescence slides: what the channel picker asks for.

A display is a list of channels, each with a colour and a contrast range ``[low, high]``
in the slide's own pixel values (uint16 slides: 0 .. 65535). Each channel's values are
mapped linearly from its range to [0, 1] (clipped), multiplied by its colour and the
channels are added (clipped to white): the usual additive fluorescence composite.

In URLs a display is ``channels=INDEX:RRGGBB:LOW:HIGH,...`` (e.g. ``0:0000ff:0:255,2:ff0000:10:200``);
channels not named are not shown. The default shows every channel over the full range of
the pixel type: one channel grey, three channels red, green, blue, more channels in
distinct hues (first blue, as DAPI usually is); that is the picture wsikit's thumbnails
show (:func:`wsikit.pixels.display_rgb`). z-stacks and time series show their first plane.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..backends.base import SlideBackend

#: default colours of channels beyond the first three (hex RGB), in order
PALETTE = ("0000ff", "00ff00", "ff0000", "ff00ff", "00ffff", "ffff00", "ff8000", "8000ff", "ffffff")
_ITEM = re.compile(r"^(\d{1,4}):([0-9a-fA-F]{6}):(-?[0-9.eE+-]{1,24}):(-?[0-9.eE+-]{1,24})$")


@dataclass(frozen=True)
class ChannelDisplay:
    """One shown channel: its index, colour (r, g, b) 0..255 and contrast range in pixel values."""

    index: int
    colour: tuple[int, int, int]
    low: float
    high: float

    def as_text(self) -> str:
        r, g, b = self.colour
        return f"{self.index}:{r:02x}{g:02x}{b:02x}:{self.low:g}:{self.high:g}"

    def as_json(self) -> dict[str, Any]:
        r, g, b = self.colour
        return {"index": self.index, "colour": f"#{r:02x}{g:02x}{b:02x}", "low": self.low, "high": self.high}


def value_range(dtype: np.dtype) -> tuple[float, float]:
    """The full range of pixel values of ``dtype`` (floats: [0, 1], as wsikit normalises them)."""
    if dtype == np.bool_:
        return 0.0, 1.0
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def default_display(slide: SlideBackend) -> tuple[ChannelDisplay, ...]:
    """Every channel of a non-RGB slide over the full value range, in the default colours."""
    channels = slide.sizes[1]
    low, high = value_range(np.dtype(slide.dtype))
    if channels == 1:
        colours = ["ffffff"]
    elif channels == 3:
        colours = ["ff0000", "00ff00", "0000ff"]
    else:
        colours = [PALETTE[k % len(PALETTE)] for k in range(channels)]
    return tuple(ChannelDisplay(k, _colour(colours[k]), low, high) for k in range(channels))


def parse_display(text: str, channels: int) -> tuple[ChannelDisplay, ...]:
    """The display ``text`` asks for (see the module's notes); ValueError naming what is wrong."""
    if len(text) > 64 * max(1, channels):
        raise ValueError("the channels parameter is too long")
    items = [part for part in text.split(",") if part]
    if not items:
        raise ValueError("the channels parameter names no channel")
    shown: dict[int, ChannelDisplay] = {}
    for item in items:
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"a channel is INDEX:RRGGBB:LOW:HIGH, got {item!r}")
        index = int(match.group(1))
        if not 0 <= index < channels:
            raise ValueError(f"channel index must be in [0, {channels - 1}], got {index}")
        try:
            low, high = float(match.group(3)), float(match.group(4))
        except ValueError:
            raise ValueError(f"a channel's range is two numbers, got {item!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"a channel's range needs LOW < HIGH, got {item!r}")
        if index in shown:
            raise ValueError(f"channel {index} is named twice")
        shown[index] = ChannelDisplay(index, _colour(match.group(2)), low, high)
    return tuple(shown.values())


def _colour(hex_rgb: str) -> tuple[int, int, int]:
    value = int(hex_rgb, 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def display_key(display: tuple[ChannelDisplay, ...]) -> str:
    """The canonical text of a display (the key tiles are cached under)."""
    return ",".join(d.as_text() for d in display)


def composite(image: np.ndarray, display: tuple[ChannelDisplay, ...]) -> np.ndarray:
    """The (h, w, 3) uint8 picture of an (h, w, z, c, t) image shown as ``display``."""
    if image.ndim != 5:
        raise ValueError(f"expected an (h, w, z, c, t) image, got shape {image.shape}")
    out = np.zeros(image.shape[:2] + (3,), dtype=np.float32)
    for channel in display:
        plane = image[:, :, 0, channel.index, 0].astype(np.float32)
        scaled = np.clip((plane - np.float32(channel.low)) / np.float32(channel.high - channel.low), 0.0, 1.0)
        out += scaled[:, :, None] * (np.asarray(channel.colour, dtype=np.float32) / np.float32(255.0))
    return np.rint(np.clip(out, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


def auto_ranges(image: np.ndarray, low_percentile: float = 0.5,
                high_percentile: float = 99.5) -> list[tuple[float, float]]:
    """Per channel (low, high) contrast ranges from the percentiles of an (h, w, z, c, t)
    image (a low-resolution read of the whole slide): what the picker's "auto" button sets."""
    ranges = []
    for c in range(image.shape[3]):
        values = image[:, :, :, c, :].ravel()
        low, high = (float(v) for v in np.percentile(values, [low_percentile, high_percentile]))
        if not high > low:
            high = low + 1.0
        ranges.append((low, high))
    return ranges
