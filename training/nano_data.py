"""Data and metrics for the nano checkpoint: photos, moving-window clips with known motion, PSNR/SSIM/warp error.

Photos come from packages (scikit-image's bundled images, Debian's mate-backgrounds, whose folder is a parameter:
``--photos``); nothing is downloaded.
A clip is made by moving a crop window (pan, zoom, small rotation) over one photo, so the motion between any two
frames is known exactly. LR frames are the bicubic 4x downscale (antialiased) quantised to 8 bits.
Only torch/numpy/cv2 are imported here: the test uses these helpers on a committed PNG without scikit-image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

SCALE = 4
# Where Debian's mate-backgrounds puts its wallpapers: the default of --photos.
MATE_DIR = Path("/usr/share/backgrounds/mate")

# Whole photos, split once: the held-out ones are never seen in training.
TRAIN_PHOTOS = [
    "mate:nature/Aqua.jpg",
    "mate:nature/Blinds.jpg",
    "mate:nature/Dune.jpg",
    "mate:nature/FreshFlower.jpg",
    "mate:nature/Garden.jpg",
    "mate:nature/GreenMeadow.jpg",
    "mate:nature/RainDrops.jpg",
    "mate:nature/LadyBird.jpg",
    "mate:nature/Storm.jpg",
    "mate:nature/Wood.jpg",
    "mate:nature/YellowFlower.jpg",
    "mate:abstract/Elephants.jpg",
    "skimage:motorcycle_left.png",
    "skimage:hubble_deep_field.jpg",
    "skimage:camera.png",
    "skimage:brick.png",
    "skimage:grass.png",
    "skimage:gravel.png",
    "skimage:coins.png",
]
HELDOUT_PHOTOS = [
    "skimage:astronaut.png",
    "skimage:coffee.png",
    "skimage:chelsea.png",
    "skimage:rocket.jpg",
    "mate:nature/TwoWings.jpg",
]
# The wallpapers are large, soft (bokeh) JPEGs: downscaled (antialiased) so that the HR ground truth has detail.
MAX_SIDE = 640

PHOTOS_HELP = (
    f"folder of Debian's mate-backgrounds wallpapers (apt-get install mate-backgrounds; default {MATE_DIR})"
)
MATE_HELP = "`apt-get install mate-backgrounds`, or pass --photos with the folder that holds its nature/ and abstract/"
SKIMAGE_HELP = "`pip install scikit-image` (or `pip install -e .[nano]`)"


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file -> (3, H, W) float32 in [0, 1] (grey and RGBA become RGB)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(path)
    if image.dtype != np.uint8:
        image = (image / np.iinfo(image.dtype).max * 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255


def photo_path(name: str, mate_dir: Path = MATE_DIR) -> Path:
    """The file of a photo named "mate:REL" (under ``mate_dir``) or "skimage:REL" (scikit-image's data)."""
    source, rel = name.split(":", 1)
    if source == "mate":
        path = Path(mate_dir) / rel
        if not path.is_file():
            raise SystemExit(f"photo {path} is missing (Debian's mate-backgrounds wallpapers): {MATE_HELP}")
        return path
    if source == "skimage":
        try:
            import skimage.data
        except ImportError as exc:
            raise SystemExit(
                f"scikit-image (which ships some of the nano photos) is missing: {SKIMAGE_HELP}"
            ) from exc
        path = Path(skimage.data.__file__).parent / rel
        if not path.is_file():
            raise SystemExit(f"photo {path} is missing from scikit-image: {SKIMAGE_HELP}")
        return path
    raise ValueError(name)


def load_photo(name: str, mate_dir: Path = MATE_DIR) -> torch.Tensor:
    """A named photo (see ``photo_path``) as (3, H, W) in [0, 1], downscaled to at most MAX_SIDE."""
    image = read_rgb(photo_path(name, mate_dir))
    h, w = image.shape[-2:]
    if max(h, w) > MAX_SIDE:
        factor = MAX_SIDE / max(h, w)
        size = (round(h * factor), round(w * factor))
        image = F.interpolate(image[None], size=size, mode="bicubic", antialias=True)[0].clamp(0, 1)
    return image


def quantize(image: torch.Tensor) -> torch.Tensor:
    return (image.clamp(0, 1) * 255).round() / 255


def downscale(hr: torch.Tensor) -> torch.Tensor:
    """HR (B, 3, H, W) in [0, 1] -> LR: bicubic 4x down with antialiasing, 8-bit quantised."""
    return quantize(F.interpolate(hr, scale_factor=1 / SCALE, mode="bicubic", antialias=True))


def bicubic_up(lr: torch.Tensor) -> torch.Tensor:
    return F.interpolate(lr, scale_factor=SCALE, mode="bicubic").clamp(0, 1)


@dataclass(frozen=True)
class Window:
    """A crop window over a photo: HR pixel p -> source point centre + scale * R(angle) (p - out_centre)."""

    cx: float
    cy: float
    scale: float
    angle: float

    def matrix(self, out_h: int, out_w: int) -> np.ndarray:
        """2x3 affine map from HR pixel coordinates to source pixel coordinates."""
        c, s = math.cos(self.angle) * self.scale, math.sin(self.angle) * self.scale
        ox, oy = (out_w - 1) / 2, (out_h - 1) / 2
        return np.array([[c, -s, self.cx - c * ox + s * oy], [s, c, self.cy - s * ox - c * oy]])


def _grid(matrix: np.ndarray, out_h: int, out_w: int, src_h: int, src_w: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(out_h, dtype=torch.float64), torch.arange(out_w, dtype=torch.float64), indexing="ij"
    )
    m = torch.from_numpy(matrix)
    sx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    sy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return torch.stack([2 * sx / (src_w - 1) - 1, 2 * sy / (src_h - 1) - 1], dim=-1).float()[None]


def render(photo: torch.Tensor, window: Window, out_h: int, out_w: int) -> torch.Tensor:
    """The HR frame (1, 3, out_h, out_w) seen through ``window`` (bicubic sampling of the photo)."""
    src_h, src_w = photo.shape[-2:]
    grid = _grid(window.matrix(out_h, out_w), out_h, out_w, src_h, src_w)
    frame = F.grid_sample(photo[None], grid, mode="bicubic", padding_mode="reflection", align_corners=True)
    return frame.clamp(0, 1)


def known_flow(current: Window, previous: Window, out_h: int, out_w: int) -> torch.Tensor:
    """Exact flow (1, 2, H, W) in HR pixels from the current frame to the previous one."""
    a = np.vstack([current.matrix(out_h, out_w), [0, 0, 1]])
    b = np.vstack([previous.matrix(out_h, out_w), [0, 0, 1]])
    m = (np.linalg.inv(b) @ a)[:2]  # current HR pixel -> previous HR pixel
    ys, xs = np.meshgrid(
        np.arange(out_h, dtype=np.float64), np.arange(out_w, dtype=np.float64), indexing="ij"
    )
    qx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    qy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return torch.from_numpy(np.stack([qx - xs, qy - ys])).float()[None]


def random_windows(
    rng: np.random.Generator, src_h: int, src_w: int, out_h: int, out_w: int, frames: int, motion: float = 1.0
) -> list[Window]:
    """A window path: sub-pixel pan, mild zoom and rotation, kept inside the photo."""
    scale0 = rng.uniform(0.8, 1.25)
    zoom = 1 + rng.uniform(-0.015, 0.015) * motion
    spin = rng.uniform(-0.008, 0.008) * motion
    speed = rng.uniform(0.5, 6.0) * motion
    heading = rng.uniform(0, 2 * math.pi)
    vx, vy = speed * math.cos(heading), speed * math.sin(heading)
    half = 0.5 * math.hypot(out_h, out_w) * scale0 * max(1.0, zoom) ** frames + 2
    span_x = max(0.0, src_w - 1 - 2 * half - abs(vx) * frames)
    span_y = max(0.0, src_h - 1 - 2 * half - abs(vy) * frames)
    cx = half + rng.uniform(0, span_x) + (abs(vx) * frames if vx < 0 else 0)
    cy = half + rng.uniform(0, span_y) + (abs(vy) * frames if vy < 0 else 0)
    return [Window(cx + vx * k, cy + vy * k, scale0 * zoom**k, spin * k) for k in range(frames)]


@dataclass
class Clip:
    hr: list[torch.Tensor]  # (1, 3, H, W) in [0, 1]
    lr: list[torch.Tensor]  # (1, 3, H/4, W/4) in [0, 1], 8-bit levels
    flows: list[torch.Tensor | None]  # flows[t]: frame t -> t-1 in HR pixels (None for t = 0)


def make_clip(
    photo: torch.Tensor, rng: np.random.Generator, out_h: int, out_w: int, frames: int, motion: float = 1.0
) -> Clip:
    windows = random_windows(rng, *photo.shape[-2:], out_h, out_w, frames, motion)
    hr = [render(photo, w, out_h, out_w) for w in windows]
    lr = [downscale(f) for f in hr]
    flows = [None] + [known_flow(windows[k], windows[k - 1], out_h, out_w) for k in range(1, frames)]
    return Clip(hr, lr, flows)


# Metrics (Y channel of BT.601, borders cropped), as in the SR literature.


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (16 + (image * weights).sum(1, keepdim=True)) / 255


def _crop(image: torch.Tensor, border: int) -> torch.Tensor:
    return image[..., border:-border, border:-border] if border else image


def psnr_y(output: torch.Tensor, target: torch.Tensor, border: int = SCALE) -> float:
    a, b = _crop(rgb_to_y(quantize(output)), border), _crop(rgb_to_y(target), border)
    mse = F.mse_loss(a.double(), b.double()).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def ssim_y(output: torch.Tensor, target: torch.Tensor, border: int = SCALE) -> float:
    """SSIM (11x11 Gaussian window, sigma 1.5) on the Y channel in [0, 255]."""
    a = _crop(rgb_to_y(quantize(output)), border).double() * 255
    b = _crop(rgb_to_y(target), border).double() * 255
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = (g / g.sum()).view(1, 1, 1, 11)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, g), g.transpose(2, 3))

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim.mean().item()


def exact_warp(previous: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``previous`` at pixel + flow (pixel-centre convention); returns (warped, valid mask)."""
    _, _, h, w = previous.shape
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    qx, qy = xs + flow[:, 0], ys + flow[:, 1]
    grid = torch.stack([2 * qx / (w - 1) - 1, 2 * qy / (h - 1) - 1], dim=-1)
    warped = F.grid_sample(previous, grid, mode="bilinear", padding_mode="border", align_corners=True)
    margin = 2 * SCALE
    valid = (qx >= margin) & (qx <= w - 1 - margin) & (qy >= margin) & (qy <= h - 1 - margin)
    return warped, valid[:, None].float()


def warp_error(current: torch.Tensor, previous: torch.Tensor, flow: torch.Tensor) -> float:
    """Mean squared difference (RGB in [0, 1]) between a frame and its predecessor warped by the true motion."""
    warped, valid = exact_warp(previous, flow)
    diff = ((current - warped) ** 2 * valid).sum() / (valid.sum() * 3).clamp(min=1)
    return diff.item()
