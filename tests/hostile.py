"""A generator of hostile inputs: every kind of file a shared photo folder can throw at a scan.

``build(root)`` writes them all and returns ``{kind: (relative path or None, expected status)}``;
expected status ``None`` means "no row" (not an image, or not a file).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from tests.imagegen import bomb_png, exif_rotated_jpeg, jpeg_bytes, noise_image, png_bytes


def _corrupt_exif_jpeg() -> bytes:
    """A JPEG whose EXIF block claims far more entries than it holds."""
    good = jpeg_bytes(noise_image((40, 40)))
    payload = b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00" + b"\xff\x7f" + b"\x12\x01\x03\x00" * 3
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return good[:2] + segment + good[2:]


def _multipage_tiff() -> bytes:
    buffer = io.BytesIO()
    pages = [noise_image((30, 30), seed=i) for i in range(3)]
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def _animated_gif() -> bytes:
    buffer = io.BytesIO()
    frames = [noise_image((30, 30), seed=i).convert("P") for i in range(3)]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return buffer.getvalue()


def _image_bytes(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def build(root: Path) -> dict[str, tuple[str | None, str | None]]:
    root.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, tuple[str | None, str | None]] = {}

    def put(kind: str, rel: str, data: bytes, status: str | None) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        kinds[kind] = (rel, status)

    rgb = noise_image((64, 48))
    put("zero-byte file", "zero.jpg", b"", "error")
    put("truncated JPEG", "truncated.jpg", jpeg_bytes(noise_image((300, 300)))[:600], "error")
    put("truncated PNG", "truncated.png", png_bytes(noise_image((300, 300)))[:400], "error")
    put(
        "random bytes named .jpg",
        "random.jpg",
        bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
        "error",
    )
    put("HTML named .png", "page.png", b"<!doctype html><html><body>not an image</body></html>", "error")
    put("text file", "notes.txt", b"just some notes\n", None)
    put("image with the wrong extension", "actually_a_jpeg.txt", jpeg_bytes(rgb), "ok")
    put("image without extension", "no_extension", png_bytes(rgb), "ok")
    put("decompression bomb", "bomb.png", bomb_png(), "error")
    put("1x1 image", "one_pixel.png", png_bytes(Image.new("RGB", (1, 1), (9, 9, 9))), "ok")
    put("2000x3 image", "sliver.png", png_bytes(Image.new("RGB", (2000, 3), (90, 9, 9))), "ok")
    put("CMYK JPEG", "cmyk.jpg", _image_bytes(rgb.convert("CMYK"), "JPEG"), "ok")
    put(
        "16-bit PNG",
        "sixteen.png",
        _image_bytes(Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257), "PNG"),
        "ok",
    )
    palette = rgb.convert("P")
    palette.info["transparency"] = 3
    put("palette with transparency", "palette.png", _image_bytes(palette, "PNG"), "ok")
    put("animated GIF", "animated.gif", _animated_gif(), "ok")
    put("multi-page TIFF", "pages.tif", _multipage_tiff(), "ok")
    for orientation in range(1, 9):
        put(f"EXIF orientation {orientation}", f"exif/o{orientation}.jpg", exif_rotated_jpeg(orientation), "ok")
    put("corrupt EXIF", "bad_exif.jpg", _corrupt_exif_jpeg(), "ok")
    put("WebP", "web.webp", _image_bytes(rgb, "WEBP"), "ok")
    put("BMP", "old.bmp", _image_bytes(rgb, "BMP"), "ok")
    put("name with newline", "new\nline.jpg", jpeg_bytes(rgb), "ok")
    put("name with comma and quote", 'a,b "c".jpg', jpeg_bytes(rgb), "ok")
    put("name with HTML", "<script>alert(1)<", b"", None)  # a folder-ish prefix is impossible; see below
    (root / "<script>alert(1)<").unlink()
    put("name with HTML", "<img src=x onerror=alert(1)>.jpg", jpeg_bytes(rgb), "ok")
    put("name with emoji", "smile 😀.jpg", jpeg_bytes(rgb), "ok")
    raw = os.fsencode(root) + b"/caf\xe9-latin1.jpg"
    with open(raw, "wb") as handle:
        handle.write(jpeg_bytes(rgb))
    kinds["name that is not UTF-8"] = (os.fsdecode(b"caf\xe9-latin1.jpg"), "ok")
    deep = Path("long")
    for i in range(12):
        deep = deep / (f"{i:02d}" + "d" * 200)
    put("very long path", str(deep / ("f" * 200 + ".jpg")), jpeg_bytes(rgb), "ok")
    (root / "album.jpg").mkdir()
    put("folder named like an image", "album.jpg/inside.png", png_bytes(rgb), "ok")
    (root / "empty_folder").mkdir()
    kinds["empty folder"] = (None, None)
    os.symlink(root / "does-not-exist.jpg", root / "broken_link.jpg")
    kinds["broken symlink"] = ("broken_link.jpg", "error")
    os.symlink(root, root / "loop")
    kinds["symlink loop"] = (None, None)
    os.mkfifo(root / "fifo.jpg")
    kinds["named pipe named .jpg"] = (None, None)
    if os.geteuid() != 0:
        put("unreadable file", "secret.jpg", jpeg_bytes(rgb), "error")
        (root / "secret.jpg").chmod(0)
    return kinds
