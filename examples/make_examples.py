"""Build examples/photos/ from the pictures in examples/sources/ (see sources/LICENSES.md).

The faces are twelve FairFace faces (CC BY 4.0) of varied age, gender and group, taken from the part of
FairFace the shipped model was never trained on; their labels are in sources/fairface/labels.csv. The
folder shows what a real photo folder holds: portraits, a phone picture stored sideways with an EXIF
orientation tag, a group picture, greyscale and CMYK scans, pictures without faces, and a file that
was cut short in transfer. Run: python examples/make_examples.py
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from PIL import Image, ImageFilter

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources"
FACES = SOURCES / "fairface"
PHOTOS = HERE / "photos"
PORTRAIT_SIZE = (360, 440)  # a FairFace crop (128 px) shown at 2x on a plain backdrop, like a studio photo
GROUP = ("10345.jpg", "11417.jpg", "16520.jpg", "2332.jpg")  # the group picture's four people


def faces() -> list[dict]:
    """The example faces with their FairFace labels (file, age band, gender, race)."""
    with open(FACES / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def portrait_name(face: dict) -> str:
    """A file name that carries the true labels, so the results can be read against them."""
    age = face["age"].replace("more than ", "") + ("+" if face["age"].startswith("more than") else "")
    return f"{face['file'].removesuffix('.jpg')} {face['gender'].lower()} {age}"


def _portrait(face: dict) -> Image.Image:
    crop = Image.open(FACES / face["file"]).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS)
    backdrop = crop.resize(PORTRAIT_SIZE).filter(ImageFilter.GaussianBlur(24))  # the photo's own colours
    backdrop.paste(crop, ((PORTRAIT_SIZE[0] - 256) // 2, (PORTRAIT_SIZE[1] - 256) // 2 - 20))
    return backdrop


def build(target: Path = PHOTOS) -> list[Path]:
    if target.exists():
        shutil.rmtree(target)
    for sub in ("portraits", "group", "scans", "no_faces", "broken"):
        (target / sub).mkdir(parents=True)
    written = []

    def save(image: Image.Image, name: str, **kwargs) -> None:
        path = target / name
        image.save(path, **kwargs)
        written.append(path)

    people = faces()
    for face in people[:-3]:
        save(_portrait(face), f"portraits/{portrait_name(face)}.jpg", quality=92)
    phone, grey, cmyk = people[-3:]
    # A phone stores the sensor's pixels sideways and says "rotate 90 degrees clockwise" in EXIF.
    exif = Image.Exif()
    exif[0x0112] = 6
    save(
        _portrait(phone).rotate(90, expand=True), f"portraits/{portrait_name(phone)} (phone).jpg", quality=92, exif=exif
    )

    canvas = Image.open(SOURCES / "coffee.png").convert("RGB").resize((1600, 1000))
    by_file = {face["file"]: face for face in people}
    for file, size, (x, y) in zip(GROUP, (300, 240, 200, 170), ((80, 330), (520, 120), (930, 420), (1300, 160))):
        canvas.paste(_portrait(by_file[file]).resize((size, round(size * 440 / 360))), (x, y))
    save(canvas, "group/four people.jpg", quality=90)

    save(_portrait(grey).convert("L"), f"scans/{portrait_name(grey)} grey.png")
    save(_portrait(cmyk).convert("CMYK"), f"scans/{portrait_name(cmyk)} cmyk.jpg", quality=90)

    save(Image.open(SOURCES / "coffee.png").convert("RGB"), "no_faces/coffee.jpg", quality=90)
    save(Image.open(SOURCES / "chelsea.png").convert("RGB"), "no_faces/chelsea_the_cat.png")
    shutil.copy(SOURCES / "rocket.jpg", target / "no_faces/rocket.jpg")
    written.append(target / "no_faces/rocket.jpg")

    full = written[0].read_bytes()
    (target / "broken/cut_short.jpg").write_bytes(full[: len(full) // 3])
    written.append(target / "broken/cut_short.jpg")
    return written


if __name__ == "__main__":
    for path in build():
        print(path.relative_to(HERE))
