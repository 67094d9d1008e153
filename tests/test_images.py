import numpy as np
import pytest
from PIL import Image

from agebatch.scanning import images
from tests.imagegen import bomb_png, exif_rotated_jpeg, jpeg_bytes, noise_image


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    path = _write(tmp_path, f"o{orientation}.jpg", exif_rotated_jpeg(orientation))
    decoded = images.decode(path)
    assert decoded.image.size == (60, 40)
    top_left = np.asarray(decoded.image)[3, 3]
    assert top_left[0] > 200 and top_left[2] < 60  # red corner is back at the top left


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1", "PA"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    base = noise_image((40, 30))
    if mode in ("I;16", "I", "F"):
        image = Image.fromarray((np.asarray(base.convert("L"), np.uint16) * 200).astype(np.uint16)).convert(mode)
        fmt, name = ("TIFF", "x.tif")
    elif mode == "PA":
        image = base.convert("P")
        image.info["transparency"] = 0
        fmt, name = ("PNG", "x.png")
    else:
        image = base.convert(mode)
        fmt, name = ("JPEG", "x.jpg") if mode == "CMYK" else ("PNG", "x.png")
    image.save(tmp_path / name, fmt)
    decoded = images.decode(tmp_path / name)
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (40, 30)


def test_sixteen_bit_png_keeps_contrast(tmp_path):
    array = np.zeros((20, 20), np.uint16)
    array[:, 10:] = 60000
    Image.fromarray(array).save(tmp_path / "g16.png")
    rgb = np.asarray(images.decode(tmp_path / "g16.png").image)
    assert rgb[0, 0, 0] < 10 and rgb[0, 15, 0] > 245


def test_transparency_is_composited_on_white(tmp_path):
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert np.asarray(images.decode(tmp_path / "clear.png").image).min() == 255


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.jpg", b"", "empty file"),
        (
            "random.jpg",
            bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)),
            "not a recognised image",
        ),
        ("page.png", b"<html><body>hello</body></html>", "not a recognised image"),
        ("cut.jpg", jpeg_bytes()[:400], "truncated"),
        ("bomb.png", bomb_png(), "decompression bomb"),
        # between our limit and Pillow's own (twice it), where Pillow would only warn
        ("bomb-144mp.png", bomb_png(12000, 12000), "decompression bomb"),
    ],
)
def test_bad_files_raise_image_error_with_one_line_reason(tmp_path, name, data, reason):
    path = _write(tmp_path, name, data)
    with pytest.raises(images.ImageError) as info:
        images.decode(path)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message and len(message) <= 200


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(images.ImageError, match="vanished"):
        images.decode(tmp_path / "gone.jpg")


def test_large_jpeg_is_decoded_in_draft_mode_with_scale(tmp_path):
    big = Image.new("RGB", (4000, 3000), (120, 90, 60))
    big.save(tmp_path / "big.jpg", quality=80)
    decoded = images.decode(tmp_path / "big.jpg", max_side=1000)
    assert max(decoded.image.size) >= 1000
    assert max(decoded.image.size) <= 2000
    assert decoded.size == (4000, 3000)
    assert decoded.scale == pytest.approx(4000 / decoded.image.width)


def test_first_frame_of_animated_gif(tmp_path):
    frames = [Image.new("P", (16, 16), i) for i in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    assert images.decode(tmp_path / "anim.gif").image.size == (16, 16)


def test_resize_face_shape():
    out = images.resize_face(noise_image((200, 200)), 128)
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8


@pytest.mark.parametrize(
    "written, expected",
    [("2024:06:01 14:03:22", "2024-06-01T14:03:22"), ("2023:02:30 10:00:00", None), ("yesterday", None), (None, None)],
)
def test_the_capture_time_comes_from_exif_and_a_bad_one_is_empty(tmp_path, written, expected):
    from PIL import Image

    from agebatch.scanning import images

    exif = Image.Exif()
    if written is not None:
        exif.get_ifd(0x8769)[0x9003] = written
    path = tmp_path / "dated.jpg"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(path, exif=exif)
    decoded = images.decode(path)  # never an error row because of a date
    assert decoded.taken_at == expected


def test_decodes_running_at_once_share_one_memory_budget(monkeypatch):
    """``--jobs`` threads never multiply the one-decode bound: what decodes hold together stays within it."""
    import threading
    import time

    budget = images._ByteBudget(100)
    held, most = [0], [0]
    lock = threading.Lock()

    def decode_like(size):
        share = min(size, budget.total)  # one decode over the budget holds all of it (and runs alone)
        with budget.held(size):
            with lock:
                held[0] += share
                most[0] = max(most[0], held[0])
            time.sleep(0.02)
            with lock:
                held[0] -= share

    threads = [threading.Thread(target=decode_like, args=(60,)) for _ in range(4)]
    threads += [threading.Thread(target=decode_like, args=(500,))]  # more than all: waits for all of it
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert most[0] <= 100 and budget.free == 100


def test_a_progressive_jpeg_counts_its_full_frame_coefficients(tmp_path):
    from PIL import Image

    path = tmp_path / "progressive.jpg"
    Image.new("RGB", (2000, 1500), (90, 120, 150)).save(path, "JPEG", progressive=True)
    with Image.open(path) as opened:
        full = opened.size
        opened.draft("RGB", (250, 190))
        progressive = images._decode_bytes(opened, full)
    baseline = tmp_path / "baseline.jpg"
    Image.new("RGB", (2000, 1500), (90, 120, 150)).save(baseline, "JPEG")
    with Image.open(baseline) as opened:
        opened.draft("RGB", (250, 190))
        plain = images._decode_bytes(opened, full)
    assert progressive - plain == 2000 * 1500 * 3 * 2
