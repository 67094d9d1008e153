import math

import numpy as np
import pytest
from PIL import Image

from agebatch.scanning import detectors, faces, images
from agebatch.scanning.mtcnn import MtcnnDetector
from tests.imagegen import FACE_PHOTO, NO_FACE_PHOTOS


@pytest.fixture(scope="module")
def detector():
    from agebatch.common import quiet

    quiet.load_tensorflow()
    return MtcnnDetector(min_face=20)


@pytest.fixture(scope="module", params=["mtcnn", "blazeface"])
def any_detector(request):
    if request.param == "mtcnn":
        from agebatch.common import quiet

        quiet.load_tensorflow()
    return detectors.make_detector(request.param, min_face=20)


def test_each_detector_finds_the_face_in_a_real_photo_with_landmarks_inside_the_box(any_detector):
    found = any_detector.detect(images.decode(FACE_PHOTO).image)
    assert len(found) == 1
    face = found[0]
    # Eileen Collins' face in the 512x512 NASA portrait lies around x 170-280, y 50-190.
    assert 150 < face.x + face.width / 2 < 290
    assert 60 < face.y + face.height / 2 < 190
    assert face.score >= detectors.REGISTRY[any_detector.name].min_score
    assert {"left_eye", "right_eye", "mouth_left", "mouth_right", "nose"} <= face.landmarks.keys()
    for x, y in face.landmarks.values():
        assert face.x <= x <= face.x + face.width and face.y <= y <= face.y + face.height
    assert face.landmarks["left_eye"][0] < face.landmarks["right_eye"][0]  # as the photo shows them


@pytest.mark.parametrize("path", NO_FACE_PHOTOS, ids=lambda p: p.name)
def test_each_detector_finds_nothing_in_face_less_photos(any_detector, path):
    assert any_detector.detect(images.decode(path).image) == []


def test_each_detector_handles_tiny_and_flat_images(any_detector):
    assert any_detector.detect(Image.new("RGB", (1, 1))) == []
    assert any_detector.detect(Image.new("RGB", (2000, 3))) == []
    assert any_detector.detect(Image.new("RGB", (300, 300), (128, 128, 128))) == []
    assert any_detector.detect(Image.new("L", (64, 64), 200)) == []


def test_boxes_are_in_original_pixels_when_detection_runs_downscaled(detector):
    portrait = images.decode(FACE_PHOTO).image
    big = portrait.resize((2048, 2048))
    small_detector = MtcnnDetector(min_face=20, detect_side=512)
    (face,) = small_detector.detect(big)
    (reference,) = detector.detect(portrait)
    assert face.x == pytest.approx(reference.x * 4, abs=24)
    assert face.width == pytest.approx(reference.width * 4, rel=0.15)


def test_min_face_drops_small_faces(detector):
    portrait = images.decode(FACE_PHOTO).image
    assert MtcnnDetector(min_face=400).detect(portrait) == []


def test_whole_image_detector():
    (face,) = faces.WholeImageDetector().detect(Image.new("RGB", (200, 150)))
    assert (face.x, face.y, face.width, face.height, face.score) == (0, 0, 200, 150, 1.0)


def test_crop_levels_the_eyes():
    # A synthetic "face": two dark eyes on a tilted line; after cropping they must be level.
    image = Image.new("RGB", (400, 400), (200, 200, 200))
    angle = 20
    centre = np.array([200.0, 200.0])
    direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    left, right = centre - 40 * direction, centre + 40 * direction
    pixels = image.load()
    for eye in (left, right):
        for dx in range(-6, 7):
            for dy in range(-6, 7):
                pixels[int(eye[0]) + dx, int(eye[1]) + dy] = (0, 0, 0)
    mouth = centre + 80 * np.array([-direction[1], direction[0]])
    marks = {
        "left_eye": tuple(left),
        "right_eye": tuple(right),
        "mouth_left": tuple(mouth - 20 * direction),
        "mouth_right": tuple(mouth + 20 * direction),
    }
    face = faces.Face(150, 150, 120, 140, 0.99, marks)
    crop = np.asarray(faces.crop_face(image, face, 128).convert("L"))
    dark = np.argwhere(crop < 60)
    left_half, right_half = dark[dark[:, 1] < 64], dark[dark[:, 1] >= 64]
    assert len(left_half) and len(right_half)
    assert abs(left_half[:, 0].mean() - right_half[:, 0].mean()) < 3  # same row: level


def test_crop_size_and_out_of_bounds_is_black():
    image = Image.new("RGB", (100, 100), (255, 255, 255))
    crop = faces.crop_face(image, faces.Face(-50, -50, 100, 100, 1.0), 64)
    assert crop.size == (64, 64)
    array = np.asarray(crop)
    assert array[0, 0].sum() == 0 and array[-1, -1].sum() == 765
