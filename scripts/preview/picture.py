"""The preview picture: per moment a row of panels side by side (source, bicubic 4x, each setting's output) and
under them an enlarged crop of the source's most detailed region, with labels.

Panels keep the output's pixels: an output up to ``PANEL_WIDTH`` wide is enlarged by a whole factor (each pixel
a square block), a wider one shrunk to ``PANEL_WIDTH``; crops are always a whole-factor enlargement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL_WIDTH = 512
GAP = 6
TEXT_SIZE = 20
LABEL_HEIGHT = 30
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
HEADER_TEXT = (255, 208, 96)
CROP_BOX = (255, 208, 96)
SCALE = 4


@dataclass(frozen=True)
class Layout:
    """Where everything goes, for an output of ``width`` x ``height`` and ``columns`` panels per row."""

    width: int
    height: int
    columns: int
    rows: int

    @property
    def zoom(self) -> float:
        """Panel pixels per output pixel: a whole number when the output is narrower than a panel."""
        return PANEL_WIDTH // self.width if self.width <= PANEL_WIDTH else PANEL_WIDTH / self.width

    @property
    def panel(self) -> tuple[int, int]:
        """(height, width) of a panel."""
        return max(1, round(self.height * self.zoom)), max(1, round(self.width * self.zoom))

    @property
    def crop_zoom(self) -> int:
        """Crop pixels per output pixel: the crop shows at most half the output each way, at least doubled."""
        return max(2, 2 * self.panel[1] // self.width)

    @property
    def crop(self) -> tuple[int, int]:
        """(height, width) of the cropped region in output pixels (a multiple of 4: whole source pixels)."""
        height, width = self.panel
        return (
            max(SCALE, height // self.crop_zoom // SCALE * SCALE),
            max(SCALE, width // self.crop_zoom // SCALE * SCALE),
        )

    @property
    def row_height(self) -> int:
        return LABEL_HEIGHT * 2 + self.panel[0] + GAP + self.crop[0] * self.crop_zoom + GAP * 2

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the whole picture."""
        width = self.columns * (self.panel[1] + GAP) + GAP
        return LABEL_HEIGHT + self.rows * self.row_height, width

    def panel_origin(self, row: int, column: int) -> tuple[int, int]:
        """(y, x) of a panel's top-left pixel."""
        return LABEL_HEIGHT + row * self.row_height + LABEL_HEIGHT * 2, GAP + column * (self.panel[1] + GAP)


@dataclass(frozen=True)
class Row:
    """One moment: a header line and, per column, a label and an output-sized RGB24 image."""

    header: str
    labels: tuple[str, ...]
    images: tuple[np.ndarray, ...]


def enlarge(image: np.ndarray, zoom: float, size: tuple[int, int]) -> np.ndarray:
    """Whole-factor pixel blocks, or an area-averaged shrink to ``size`` (height, width)."""
    if zoom >= 1 and zoom == int(zoom):
        return np.repeat(np.repeat(image, int(zoom), axis=0), int(zoom), axis=1)
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def detail_region(source: np.ndarray, crop: tuple[int, int]) -> tuple[int, int]:
    """(y, x) in output pixels of the ``crop``-sized region whose source pixels have the most gradient energy."""
    gray = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    height, width = min(crop[0] // SCALE, gray.shape[0]), min(crop[1] // SCALE, gray.shape[1])
    table = cv2.integral(energy)
    sums = (
        table[height:, width:] - table[:-height, width:] - table[height:, :-width] + table[:-height, :-width]
    )
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y) * SCALE, int(x) * SCALE


def outline(
    canvas: np.ndarray, top: int, left: int, bottom: int, right: int, origin: tuple[int, int]
) -> None:
    """A two-pixel ``CROP_BOX`` frame just inside rows top..bottom-1, columns left..right-1 (from ``origin``)."""
    y0, x0, y1, x1 = origin[0] + top, origin[1] + left, origin[0] + bottom, origin[1] + right
    canvas[y0 : y0 + 2, x0:x1] = canvas[y1 - 2 : y1, x0:x1] = CROP_BOX
    canvas[y0:y1, x0 : x0 + 2] = canvas[y0:y1, x1 - 2 : x1] = CROP_BOX


@cache
def font(size: int = TEXT_SIZE) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, which matplotlib ships."""
    from matplotlib import font_manager

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def compose(title: str, rows: list[Row], source_rows: list[np.ndarray]) -> np.ndarray:
    """The picture as an RGB24 array. ``source_rows[i]`` is row i's source frame (at its own size): it picks
    the crop, and the source panel (column 0) gets a box around it."""
    first = rows[0].images[0]
    layout = Layout(first.shape[1], first.shape[0], len(rows[0].images), len(rows))
    height, width = layout.size
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    texts: list[tuple[int, int, str, tuple[int, int, int]]] = [(GAP, 4, title, TEXT)]
    panel_h, panel_w = layout.panel
    crop_h, crop_w = layout.crop
    for r, (row, source) in enumerate(zip(rows, source_rows, strict=True)):
        top = LABEL_HEIGHT + r * layout.row_height
        cy, cx = detail_region(source, layout.crop)
        crop = f"below: the boxed, most detailed part, {layout.crop_zoom}x"
        texts.append((GAP, top + 4, f"{row.header}   {crop}", HEADER_TEXT))
        crop_top = top + LABEL_HEIGHT * 2 + panel_h + GAP
        for c, (label, image) in enumerate(zip(row.labels, row.images, strict=True)):
            y, x = layout.panel_origin(r, c)
            texts.append((x, top + LABEL_HEIGHT + 4, label, TEXT))
            canvas[y : y + panel_h, x : x + panel_w] = enlarge(image, layout.zoom, layout.panel)
            part = image[cy : cy + crop_h, cx : cx + crop_w]
            block = enlarge(part, layout.crop_zoom, part.shape[:2])
            canvas[crop_top : crop_top + block.shape[0], x : x + block.shape[1]] = block
        y, x = layout.panel_origin(r, 0)
        outline(canvas, *(round(v * layout.zoom) for v in (cy, cx, cy + crop_h, cx + crop_w)), origin=(y, x))
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for x, y, text, colour in texts:
        draw.text((x, y), text, fill=colour, font=font())
    return np.asarray(picture)
