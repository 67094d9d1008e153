"""BlazeFace: the tile pyramid covers every face size, boxes land in original pixels, unsure faces need
O-Net's agreement, and the shipped model files are the ones that were shipped."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from agebatch.common import vendored
from agebatch.scanning import blazeface, blazenet, detections, detectors, faces, images, onet, scanner
from agebatch.scanning.facebox import Face
from agebatch.scanning.options import ScanOptions
from tests.conftest import UTKFACE, needs_utkface
from tests.imagegen import EXAMPLES, FACE_PHOTO


@pytest.mark.parametrize(
    ("width", "height", "min_face"), [(1024, 768, 40), (4000, 3000, 62), (300, 2000, 25), (64, 64, 40)]
)
def test_the_pyramid_holds_every_face_whole_in_a_canvas_at_a_size_it_finds(width, height, min_face):
    levels = blazeface.pyramid(width, height, min_face)
    longest = max(width, height)
    assert levels[0] == blazeface.Level(longest, longest, [(0.0, 0.0)])  # the whole photo first
    assert all(round(level.canvas / level.side, 6) in blazeface.CANVAS_MULTIPLES for level in levels)
    rng = np.random.default_rng(0)
    for _ in range(300):
        side = float(rng.uniform(min(min_face, min(width, height)), min(width, height)))
        x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
        assert any(
            blazeface.SMALLEST_FACE * level.side <= side + 1e-6
            and (side <= blazeface.LARGEST_FACE * level.side + 1e-6 or level.side == longest)
            and any(
                ox <= x + 1e-6
                and x + side <= ox + level.canvas + 1e-6
                and oy <= y + 1e-6
                and y + side <= oy + level.canvas + 1e-6
                for ox, oy in level.origins
            )
            for level in levels
        ), (side, x, y)


def test_a_level_is_searched_on_the_canvases_that_cover_it_with_the_fewest_pixels():
    """A 12 MP photo's finest level, searched one network side at a time, would repeat the overlap of
    neighbouring tiles in nearly two pixels of every three; four-side canvases repeat far less."""
    finest = blazeface.pyramid(2000, 1500, 31.25)[-1]
    assert finest.canvas == 4 * finest.side
    computed = len(finest.origins) * (finest.canvas / finest.side) ** 2
    tiles = len(blazeface._starts(2000, finest.side, 0.4 * finest.side)) * len(
        blazeface._starts(1500, finest.side, 0.4 * finest.side)
    )
    assert computed < 0.6 * tiles


def test_a_canvas_of_any_shape_finds_the_face_a_tile_finds_in_the_same_place():
    """The network runs on canvases of many shapes: anchors and box offsets must follow each side, or
    faces found on wide or tall canvases would land in the wrong place."""
    photo = images.decode(FACE_PHOTO).image
    tile = blazeface.cut_tile(photo, 0, 0, max(photo.size), 128)
    network = blazenet.BlazeFaceNetwork()
    (alone,) = detections.merged(blazeface._in_image(network.run(tile, 0.5), 0, 0, 1.0))
    for height, width, top, left in ((256, 256, 70, 40), (192, 384, 30, 200), (320, 128, 150, 0)):
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[top : top + 128, left : left + 128] = tile
        (placed,) = detections.merged(blazeface._in_image(network.run(canvas, 0.5), 0, 0, 1.0))
        assert np.abs(placed[1] - (alone[1] + [left, top, left, top])).max() < 3
        assert np.abs(placed[2] - (alone[2] + [left, top])).max() < 3
        assert abs(placed[0] - alone[0]) < 0.1
    with pytest.raises(ValueError, match="multiples of 16"):
        network.run(np.zeros((200, 200, 3), np.uint8), 0.5)  # its anchors would be spaced wrong
    with pytest.raises(ValueError, match="RGB tiles"):
        network.run(np.zeros((128, 128), np.uint8), 0.5)


def test_a_batch_of_tiles_finds_what_each_tile_finds_alone():
    """The second looks run as one batch: the network's outputs hold each feature map for all tiles in
    turn, and a tile's hits must be its own, each at its own threshold."""
    photo = images.decode(FACE_PHOTO).image
    tile = blazeface.cut_tile(photo, 0, 0, max(photo.size), 128)
    noise = np.random.default_rng(1).integers(0, 255, (128, 128, 3), np.uint8)
    tiles = np.stack([noise, tile, tile[:, ::-1], np.zeros_like(tile)])
    network = blazenet.BlazeFaceNetwork()
    together = network.run_batch(tiles, [0.5, 0.5, 0.1, 0.5])
    for hits, single, threshold in zip(together, tiles, [0.5, 0.5, 0.1, 0.5], strict=True):
        alone = network.run(single, threshold)
        np.testing.assert_allclose(hits.scores, alone.scores, atol=1e-5)
        np.testing.assert_allclose(hits.boxes, alone.boxes, atol=1e-3)
    assert len(together[1]) > 0 and len(together[2]) >= len(together[1])


def test_interpreters_are_kept_per_shape_and_only_so_many():
    """Making an interpreter for a shape costs about as much as running it: a shape seen again reuses
    its own; and however many shapes are asked for, only the last few are kept (memory stays bounded)."""
    network = blazenet.BlazeFaceNetwork()
    first = network._runner((1, 256, 256))
    assert network._runner((1, 256, 256)) is first
    for side in range(128, 1024, 64):
        network._runner((1, side, 128))
        assert len(network._runners) <= blazenet.KEPT_SHAPES
    assert (1, 256, 256) not in network._runners  # the least recently used went first


def test_a_16_bit_grey_photo_is_searched_as_grey_and_an_empty_one_has_no_face():
    grey = np.asarray(images.decode(FACE_PHOTO).image.convert("L"), np.uint16) * 257
    sixteen = Image.fromarray(grey)  # mode I;16: a plain convert("RGB") would saturate it to white
    detector = detectors.make_detector("blazeface")
    assert len(detector.detect(sixteen)) == 1
    assert detector.detect(Image.new("RGB", (0, 0))) == []


def test_tiles_at_the_edges_are_letterboxed_not_stretched():
    image = Image.new("RGB", (300, 100), (200, 200, 200))
    tile = blazeface.cut_tile(image, 0, 0, 300, 128)
    assert tile.shape == (128, 128, 3)
    assert tile[:40].mean() > 150 and tile[50:].max() == 0  # the photo on top, black below
    assert not blazeface.cut_tile(image, 400, 400, 50, 128).any()  # a square outside the photo


def test_boxes_map_back_to_original_pixels_for_an_exif_rotated_draft_decoded_photo(tmp_path):
    reference = detectors.make_detector("blazeface", min_face=20).detect(images.decode(FACE_PHOTO).image)[0]
    upright = Image.open(FACE_PHOTO).convert("RGB").resize((3072, 3072), Image.Resampling.BILINEAR)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter: the viewer turns it back
    path = tmp_path / "big.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", exif=exif, quality=92)
    decoded = images.decode(path, max_side=detectors.decode_side("blazeface", 128))
    assert decoded.scale == 2  # JPEG draft mode decoded it at half size
    found, crops = faces.find_faces(decoded.image, detectors.make_detector("blazeface"), 128, decoded.scale)
    (face,) = [f.scaled(decoded.scale) for f in found]
    assert face.x + face.width / 2 == pytest.approx(6 * (reference.x + reference.width / 2), abs=24)
    assert face.y + face.height / 2 == pytest.approx(6 * (reference.y + reference.height / 2), abs=24)
    assert face.width == pytest.approx(6 * reference.width, rel=0.15)
    assert crops[0].shape == (128, 128, 3)


def test_min_face_counts_original_pixels_whatever_the_decoded_size():
    half = images.decode(FACE_PHOTO).image.resize((256, 256))  # the face: about 95 px, 47 at half size
    detector = detectors.make_detector("blazeface", min_face=80)
    assert detector.detect(half) == []
    assert len(detector.detect(half, scale=2.0)) == 1


@pytest.mark.parametrize("altered_file", [blazeface.SHORT_RANGE.file, onet.ONET_FILE])
def test_the_shipped_models_are_checked_and_an_altered_one_is_a_one_line_error(
    altered_file, tmp_path, monkeypatch, run_cli, tiny_predictor
):
    for name in vendored.VENDORED:
        vendored.read_vendored(name)  # every shipped file matches its recorded digest
        assert (vendored.VENDOR_DIR / vendored.VENDORED[name].license_file).is_file()
    altered = tmp_path / "vendor"
    altered.mkdir()
    for name in (blazeface.SHORT_RANGE.file, onet.ONET_FILE):
        blob = bytearray(vendored.vendored_path(name).read_bytes())
        if name == altered_file:
            blob[1000] ^= 1
        (altered / name).write_bytes(bytes(blob))
    monkeypatch.setattr(vendored, "VENDOR_DIR", altered)
    with pytest.raises(vendored.VendoredFileError, match="SHA-256 differs"):
        detectors.check_detector("blazeface")
    code, _, err = run_cli("predict", FACE_PHOTO, "--detector", "blazeface")
    assert code == 2
    assert "not the file agebatch shipped" in err and len(err.strip().splitlines()) == 1
    # Through the Python API too: the scan stops before its first image, and a detector fails on every
    # photo, not only on those with a face unsure enough to need O-Net.
    with pytest.raises(vendored.VendoredFileError):
        scanner.scan_to_stream([FACE_PHOTO], io.StringIO(), tiny_predictor, ScanOptions(detector="blazeface"))
    with pytest.raises(vendored.VendoredFileError):
        blazeface.BlazeFaceDetector(40, 0.6).detect(Image.new("RGB", (64, 64)))


def test_predict_with_blazeface_never_imports_tensorflow(tmp_path):
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from agebatch.cli import app\n"
        f"result = CliRunner().invoke(app, ['predict', {str(FACE_PHOTO)!r}, '--detector', 'blazeface', '--json'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(result.stdout.count('\"age\"'), 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["1", "False"]


def test_a_face_less_noise_photo_gives_no_face():
    noise = np.random.default_rng(3).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    buffer.seek(0)
    assert detectors.make_detector("blazeface").detect(Image.open(buffer).convert("RGB")) == []


def test_onet_tells_a_real_face_from_a_texture():
    photo = images.decode(FACE_PHOTO).image
    face = detectors.make_detector("blazeface").detect(photo)[0]
    verifier = onet.OnetVerifier()
    assert verifier.face_probability(photo, face) > 0.9
    coffee = Image.open(EXAMPLES / "sources" / "coffee.png").convert("RGB")
    textures = [verifier.face_probability(coffee, Face(x, y, 80, 100, 0.65)) for x in (0, 160, 320) for y in (0, 150)]
    assert max(textures) < 0.3


@pytest.mark.parametrize("size", [(-5.0, -5.0), (0.0, 30.0), (float("nan"), 30.0), (float("inf"), 30.0)])
def test_a_box_without_a_real_size_is_no_face_to_onet(size):
    photo = Image.new("RGB", (64, 64), (128, 100, 90))
    assert onet.OnetVerifier().face_probability(photo, Face(10.0, 10.0, *size, 0.65)) == 0.0


def test_an_unsure_face_is_kept_only_when_onet_agrees(monkeypatch):
    points = np.array([[130, 140], [170, 140], [150, 160], [150, 180], [110, 150], [190, 150]], float)
    sure = (0.9, np.array([100.0, 100.0, 200.0, 200.0]), points)
    unsure = (0.65, np.array([400.0, 100.0, 500.0, 200.0]), points + (300, 0))
    monkeypatch.setattr(blazeface.BlazeFaceDetector, "detect_raw", lambda self, image, scale=1.0: [sure, unsure])
    photo = Image.new("RGB", (640, 480))
    for probability, kept in ((0.2, [0.9]), (0.95, [0.9, 0.65])):
        monkeypatch.setattr(onet.OnetVerifier, "face_probability", lambda self, image, face, p=probability: p)
        found = detectors.make_detector("blazeface").detect(photo)
        assert sorted((f.score for f in found), reverse=True) == kept
    assert blazeface.SURE_SCORE > detectors.REGISTRY["blazeface"].min_score


def test_a_mirrored_photo_gives_the_mirrored_face_with_eyes_and_ears_named_the_other_way():
    """The box and keypoints blend the plain and mirrored looks, so the face found in a mirrored photo
    is the mirror image of the one found in the photo (one look alone drifts by several percent of the
    face); put back in the wrong order, the two eyes would blend towards the nose."""
    photo = images.decode(FACE_PHOTO).image
    detector = blazeface.BlazeFaceDetector(min_face=20, min_score=0.5)
    _, box, points = detector.detect_raw(photo)[0]
    _, _, mirrored = detector.detect_raw(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT))[0]
    side = float(np.sqrt((box[2] - box[0]) * (box[3] - box[1])))
    back = mirrored.copy()
    back[:, 0] = photo.width - back[:, 0]
    assert np.abs(back[blazeface.MIRRORED_ORDER] - points).max() < 0.03 * side
    assert points[1, 0] - points[0, 0] > 0.3 * side  # the image-left eye left of the image-right one
    assert points[5, 0] - points[4, 0] > 0.5 * side  # and the ears likewise


def test_part_of_a_face_is_not_another_face_nor_is_a_face_with_its_surroundings():
    big = (0.9, np.array([100.0, 100.0, 300.0, 340.0]), np.zeros((6, 2)))
    chin = (0.75, np.array([170.0, 230.0, 240.0, 320.0]), np.zeros((6, 2)))
    beside = (0.8, np.array([400.0, 100.0, 480.0, 200.0]), np.zeros((6, 2)))
    kept = detections.without_nested([big, beside, chin], blazeface.SURE_SCORE)
    assert [k[0] for k in kept] == [0.9, 0.8]
    # A face in a round frame (a cup, a porthole) seen at a coarser scale as a bigger, less sure face.
    face = (0.93, np.array([372.0, 286.0, 426.0, 340.0]), np.zeros((6, 2)))
    framed = (0.64, np.array([230.0, 155.0, 570.0, 500.0]), np.zeros((6, 2)))
    assert [k[0] for k in detections.without_nested([face, beside, framed], blazeface.SURE_SCORE)] == [0.93, 0.8]
    # But a face the network is sure of stays with a surer small face over its chin (a child in front).
    adult = (0.89, np.array([300.0, 200.0, 600.0, 500.0]), np.zeros((6, 2)))
    child = (0.93, np.array([400.0, 420.0, 500.0, 520.0]), np.zeros((6, 2)))
    assert [k[0] for k in detections.without_nested([child, adult], blazeface.SURE_SCORE)] == [0.93, 0.89]


@needs_utkface()
def test_a_utkface_crop_pasted_into_a_photo_is_cut_back_out_at_its_own_framing():
    """The photo path must hand the model what it was trained on: for a UTKFace crop pasted whole on a
    plain background, the crop cut around the detected face is that square, give or take detector noise."""
    names = sorted(p.name for p in UTKFACE.iterdir())[500:21000:700]  # 30 faces of all ages, fixed
    sides, offsets = [], []
    detector = detectors.make_detector("blazeface")
    background = Image.open(EXAMPLES / "sources" / "coffee.png").convert("RGB")
    for name in names:
        crop = Image.open(UTKFACE / name).convert("RGB")
        photo = background.resize((3 * crop.width, 3 * crop.height))
        photo.paste(crop, (crop.width, crop.height))
        found = detector.detect(photo)
        assert len(found) == 1, f"{name}: {len(found)} faces"
        face = found[0]
        cx, cy, side, _ = faces.framing(face)
        sides.append(side / crop.width)
        offsets.append(np.hypot(cx - 1.5 * crop.width, cy - 1.5 * crop.height) / crop.width)
    assert 0.97 < float(np.median(sides)) < 1.03
    assert float(np.median(offsets)) < 0.03


def test_overlapping_detections_are_one_face_and_a_box_of_no_area_is_its_own():
    """One face seen twice blends into one; a detection with no area (a regression gone wrong on a
    hostile photo) overlaps nothing, not even itself, and must still leave the queue."""
    points = np.zeros((6, 2))
    face = (0.9, np.array([100.0, 100.0, 200.0, 200.0]), points)
    again = (0.8, np.array([105.0, 100.0, 205.0, 200.0]), points)
    flat = (0.95, np.array([300.0, 300.0, 300.0, 340.0]), points)
    inverted = (0.7, np.array([500.0, 500.0, 480.0, 540.0]), points)
    found = detections.merged([face, again, flat, inverted])
    assert [f[0] for f in found] == [0.95, 0.9, 0.7]
    assert found[1][1][0] == pytest.approx((0.9 * 100 + 0.8 * 105) / 1.7)
    assert detections.overlap(face[1], again[1]) == pytest.approx(95 * 100 / (2 * 100 * 100 - 95 * 100))
    assert detections.overlap(flat[1], flat[1]) == 0.0
