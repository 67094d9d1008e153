"""Pictures for people: boxes and labels on a photo, heat maps blended onto it, a caption panel."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BOX_COLOURS = {"male": (59, 111, 182), "female": (208, 88, 126)}


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def label(prediction) -> str:
    return f"{prediction.age:.0f} y, {prediction.gender} ({100 * prediction.gender_prob:.0f}%)"


def draw_boxes(
    image: Image.Image, boxes: list[tuple[float, float, float, float]], labels: list[str], genders: list[str]
) -> Image.Image:
    """A copy of ``image`` with each box outlined and labelled."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 400))
    font = _font(max(12, round(max(out.size) / 50)))
    for (x, y, w, h), text, gender in zip(boxes, labels, genders):
        colour = BOX_COLOURS.get(gender, (240, 200, 0))
        draw.rectangle((x, y, x + w, y + h), outline=colour, width=width)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        ty = y - (bottom - top) - 2 * width if y - (bottom - top) - 2 * width > 0 else y + h + width
        draw.rectangle((x, ty, x + (right - left) + 2 * width, ty + (bottom - top) + 2 * width), fill=colour)
        draw.text((x + width, ty), text, fill=(255, 255, 255), font=font)
    return out


def heat_overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """Blend a [0, 1] heat map (same size as ``image``) onto it with a jet-like colour map."""
    from matplotlib import colormaps

    heat = np.clip(np.nan_to_num(heat), 0, 1)
    colours = (colormaps["jet"](heat)[..., :3] * 255).astype(np.float32)
    base = np.asarray(image.convert("RGB"), np.float32)
    weight = (alpha * np.clip(heat * 1.5, 0, 1))[..., None]
    return Image.fromarray((base * (1 - weight) + colours * weight).astype(np.uint8))


def mark_faces(image: Image.Image, boxes: list[tuple[float, float, float, float]], numbers: list[int]) -> Image.Image:
    """A copy of ``image`` with each box outlined thinly and tagged with its face number, so captions can say which is which."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(1, round(max(out.size) / 600))
    font = _font(max(12, round(max(out.size) / 45)))
    for (x, y, w, h), number in zip(boxes, numbers):
        draw.rectangle((x, y, x + w, y + h), outline=(255, 255, 255), width=width)
        text = str(number)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tx, ty = max(0, x) + width, max(0, y - (bottom - top) - 3 * width)
        draw.rectangle((tx - width, ty, tx + (right - left) + 2 * width, ty + bottom + 2 * width), fill=(20, 20, 20))
        draw.text((tx, ty), text, fill=(255, 255, 255), font=font)
    return out


def with_caption(image: Image.Image, lines: list[str], heat_scale: bool = False) -> Image.Image:
    """``image`` with a white panel on the right holding ``lines`` of text (and, for heat maps, their colour scale)."""
    font = _font(max(14, round(image.height / 30)))
    probe = ImageDraw.Draw(image)
    line_heights = [probe.textbbox((0, 0), line, font=font)[3] + 8 for line in lines]
    width = max((probe.textbbox((0, 0), line, font=font)[2] for line in lines), default=0) + 30
    scale_height = 3 * line_heights[0] if heat_scale and lines else 0
    height = max(image.height, 15 + sum(line_heights) + scale_height + 15)
    out = Image.new("RGB", (image.width + width, height), (255, 255, 255))
    out.paste(image.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(out)
    y = 15
    for line, line_height in zip(lines, line_heights):
        draw.text((image.width + 15, y), line, fill=(20, 20, 20), font=font)
        y += line_height
    if scale_height:
        _draw_heat_scale(out, draw, font, (image.width + 15, y + 8, width - 30, line_heights[0]))
    return out


def _draw_heat_scale(out: Image.Image, draw: ImageDraw.ImageDraw, font, area: tuple[int, int, int, int]) -> None:
    """The heat map's colours from no weight to the most, labelled, as a bar under the caption."""
    x, y, width, height = area
    width = max(width, 60)
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :].repeat(max(height // 2, 6), axis=0)
    bar = heat_overlay(Image.new("RGB", (width, ramp.shape[0]), (128, 128, 128)), ramp, alpha=1.0)
    out.paste(bar, (x, y))
    draw.text((x, y + ramp.shape[0] + 2), "little", fill=(20, 20, 20), font=font)
    right = draw.textbbox((0, 0), "most weight", font=font)[2]
    draw.text((x + width - right, y + ramp.shape[0] + 2), "most weight", fill=(20, 20, 20), font=font)
