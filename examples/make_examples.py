"""Build examples/photos/ from the public-domain / CC0 pictures in examples/sources/.

The folder shows what a real photo folder holds: a portrait, a phone picture stored sideways with an
EXIF orientation tag, a group picture, greyscale and CMYK scans, pictures without faces, and a file
that was cut short in transfer. Run: python examples/make_examples.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources"
PHOTOS = HERE / "photos"


def _astronaut() -> Image.Image:
    return Image.open(SOURCES / "astronaut.png").convert("RGB")


def build(target: Path = PHOTOS) -> list[Path]:
    if target.exists():
        shutil.rmtree(target)
    for sub in ("portraits", "group", "scans", "no_faces", "broken"):
        (target / sub).mkdir(parents=True)
    astronaut = _astronaut()
    written = []

    def save(image: Image.Image, name: str, **kwargs) -> None:
        path = target / name
        image.save(path, **kwargs)
        written.append(path)

    save(astronaut, "portraits/astronaut.jpg", quality=92)
    # A phone stores the sensor's pixels sideways and says "rotate 90 degrees clockwise" in EXIF.
    exif = Image.Exif()
    exif[0x0112] = 6
    save(astronaut.rotate(90, expand=True), "portraits/astronaut phone (rotated).jpg", quality=92, exif=exif)

    # A group picture: the portrait's head at three sizes on a wide background.
    head = astronaut.crop((120, 0, 320, 240))
    canvas = Image.open(SOURCES / "coffee.png").convert("RGB").resize((1600, 1000))
    for size, (x, y) in ((300, (80, 300)), (220, (700, 120)), (160, (1250, 500))):
        canvas.paste(head.resize((size, round(size * 1.2))), (x, y))
    save(canvas, "group/three people.jpg", quality=90)

    save(astronaut.convert("L"), "scans/astronaut_grey.png")
    save(astronaut.convert("CMYK"), "scans/astronaut_cmyk.jpg", quality=90)

    save(Image.open(SOURCES / "coffee.png").convert("RGB"), "no_faces/coffee.jpg", quality=90)
    save(Image.open(SOURCES / "chelsea.png").convert("RGB"), "no_faces/chelsea_the_cat.png")
    shutil.copy(SOURCES / "rocket.jpg", target / "no_faces/rocket.jpg")
    written.append(target / "no_faces/rocket.jpg")

    full = (target / "portraits/astronaut.jpg").read_bytes()
    (target / "broken/cut_short.jpg").write_bytes(full[: len(full) // 3])
    written.append(target / "broken/cut_short.jpg")
    return written


if __name__ == "__main__":
    for path in build():
        print(path.relative_to(HERE))
