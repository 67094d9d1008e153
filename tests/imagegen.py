"""Generated test images: ordinary, unusual and hostile files, made on the fly (nothing committed)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FACE_PHOTO = EXAMPLES / "sources" / "astronaut.png"  # 512x512, public domain: the tests know its geometry
NO_FACE_PHOTOS = [EXAMPLES / "photos" / "no_faces" / n for n in ("coffee.jpg", "rocket.jpg", "chelsea_the_cat.png")]


def noise_image(size=(96, 80), seed=0, mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(array, "RGB").convert(mode)


def gradient_image(size=(120, 90)) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)
    array = np.stack([np.tile(x, (size[1], 1))] * 3, axis=-1)
    return Image.fromarray(array, "RGB")


def save_jpeg(path: Path, image: Image.Image | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (image or noise_image()).save(path, "JPEG", **kwargs)
    return path


def jpeg_bytes(image: Image.Image | None = None, **kwargs) -> bytes:
    buffer = io.BytesIO()
    (image or noise_image()).convert("RGB").save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png(width: int = 40000, height: int = 40000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def exif_rotated_jpeg(orientation: int, size=(60, 40)) -> bytes:
    """A JPEG stored with EXIF orientation ``orientation`` (1-8); upright it is ``size`` with a red top-left."""
    upright = Image.new("RGB", size, (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, size[0] // 3, size[1] // 3))
    inverse = {
        1: lambda im: im,
        2: lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        3: lambda im: im.transpose(Image.Transpose.ROTATE_180),
        4: lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        5: lambda im: im.transpose(Image.Transpose.TRANSPOSE),
        6: lambda im: im.transpose(Image.Transpose.ROTATE_90),
        7: lambda im: im.transpose(Image.Transpose.TRANSVERSE),
        8: lambda im: im.transpose(Image.Transpose.ROTATE_270),
    }[orientation]
    stored = inverse(upright)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue()


def utk_folder(root: Path, count: int = 40, size: int = 48, seed: int = 0) -> Path:
    """A UTKFace-style folder of generated images whose names carry age, gender and race."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        age = int(rng.integers(1, 90))
        gender = i % 2
        race = int(rng.integers(0, 5))
        shade = 60 + 150 * gender
        array = np.full((size, size, 3), shade, np.uint8) + rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
        Image.fromarray(array).save(root / f"{age}_{gender}_{race}_2017011{i:04d}12345.jpg.chip.jpg")
    return root


def crops_folder(root: Path, count: int) -> Path:
    """A folder of ``count`` 64x64 noise "crops" (for --detector none) and one broken JPEG."""
    root.mkdir()
    for i in range(count):
        noise_image((64, 64), seed=i).save(root / f"f{i}.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    return root


PORTRAITS = Path(__file__).resolve().parent.parent / "examples" / "photos" / "portraits"


def portrait(name_start: str) -> Image.Image:
    """A bundled portrait (a UTKFace crop) the default detector finds, by the start of its name."""
    return Image.open(next(p for p in sorted(PORTRAITS.iterdir()) if p.name.startswith(name_start))).convert("RGB")


def write_video(
    path: Path,
    people: list[tuple[Image.Image, float, float, tuple[int, int], tuple[int, int], int]],
    size: tuple[int, int] = (480, 270),
    fps: int = 10,
    seconds: float = 3.0,
    codec: str = "libx264",
    rotation: int = 0,
) -> Path:
    """A generated video: each person (face, from s, to s, start (x, y), end (x, y), side) glides in a
    straight line over a noisy background while on screen. With ``rotation`` (counter-clockwise
    degrees) the upright picture of ``size`` is stored turned back by it, with the display rotation
    that turns it upright again, as a phone records."""
    import av

    rng = np.random.default_rng(0)
    background = Image.fromarray((rng.random((size[1], size[0], 3)) * 60 + 100).astype(np.uint8))
    stored = size if rotation % 180 == 0 else (size[1], size[0])
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = stored[0], stored[1], "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(round(seconds * fps)):
            t, canvas = i / fps, background.copy()
            for face, start, stop, (x0, y0), (x1, y1), side in people:
                if start <= t < stop:
                    a = (t - start) / max(stop - start, 1e-6)
                    canvas.paste(face.resize((side, side)), (round(x0 + (x1 - x0) * a), round(y0 + (y1 - y0) * a)))
            if rotation:
                canvas = canvas.rotate(-rotation, expand=True)
            for packet in stream.encode(av.VideoFrame.from_image(canvas)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
