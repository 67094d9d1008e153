"""BlazeFace (MediaPipe's face detector) through LiteRT: a small single-shot network, no TensorFlow.

The short-range model sees a 128-pixel square and finds faces reliably from about a fifth of that side
upwards, so a photo is searched as a pyramid of levels: the whole photo first, then ever finer scales
down to the one where a face of ``min_face`` original pixels is ``SMALLEST_FACE`` of the network's
side. The network is convolutional (``blazenet``), so a level is searched on square canvases of one,
two or four network sides (whichever covers it with the fewest pixels): canvases of a level overlap by
the largest face the level must find, so every face lies whole in some canvas, and bigger canvases
repeat less of that overlap. Detections from all canvases are merged (score-weighted, as MediaPipe
does). Each candidate then gets a second look, centred and mirrored (its four tiles in one batch),
which keeps faces and drops textures; blending the looks' boxes and keypoints steadies the crop (a
mirrored photo gives nearly the mirrored crop). A face that still scores below ``SURE_SCORE`` is kept
only if MTCNN's O-Net agrees it is a face (``onet``): the cascade the thresholds below were chosen for
finds more small and dim faces than either alone and fewer textures.

The network's six keypoints (eyes, nose tip, mouth centre, ears) give the eye-levelled crop its
landmarks. Its box is squarer and lower than MTCNN's; ``as_mtcnn_face`` restates it in MTCNN's terms
with constants measured on the same faces (``benchmarks/detector_framing.py``), so the crop the model
sees is framed as in training and ``--min-face`` means one thing for both detectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from agebatch.scanning import images
from agebatch.scanning.blazenet import SHORT_RANGE, BlazeFaceModel, BlazeFaceNetwork, Hits
from agebatch.scanning.detections import NMS_IOU, Detection, blended, merged, overlap, overlaps, without_nested
from agebatch.scanning.detectors import DETECT_SIDE
from agebatch.scanning.facebox import MTCNN_MIN_FACE, Face
from agebatch.scanning.onet import ONET_FILE, OnetVerifier

PROPOSAL_SCORE = 0.4  # first pass: permissive, every proposal gets a second look (scored by min_score)
MIRROR_SCORE = 0.1  # the mirrored second look: anything weaker counts as nothing
SECOND_LOOK_FACES = (0.3, 0.45)  # of a second look's tile side: where true and false faces part best
SMALLEST_FACE = 0.15  # of the network's side: the first pass proposes smaller faces unreliably
LARGEST_FACE = 0.4  # of the network's side: a level hands faces above this to the coarser level
REDUCING_GAP = 2.0  # a second look's tile at least twice this too big is first shrunk by a whole factor
ROUNDING_PIXELS = 2  # network pixels more that canvases overlap by: their origins are rounded to whole ones
CANVAS_MULTIPLES = (1, 2, 4)  # a level's canvases are this many network sides square (the cheapest cover wins)
# The cascade (chosen on the recall and face-less sets of benchmarks/detectors.py, seeds 0-7): a face
# scoring at least SURE_SCORE stands; one between the detector's min_score and SURE_SCORE needs O-Net's
# face probability to reach ONET_MIN_PROBABILITY.
SURE_SCORE = 0.75
ONET_MIN_PROBABILITY = 0.7
# BlazeFace's square box against MTCNN's on the same faces (medians, benchmarks/detector_framing.py):
# MTCNN's box is this much wider and taller than BlazeFace's side, its centre this many sides higher,
# and MTCNN's mouth-corner midpoint this many sides above BlazeFace's mouth centre.
MTCNN_WIDTH_PER_SIDE = 0.896
MTCNN_HEIGHT_PER_SIDE = 1.123
MTCNN_CENTRE_ABOVE = 0.068
MTCNN_MOUTH_ABOVE = 0.029
MTCNN_SIDE_PER_BOX_SIDE = 1.0  # sqrt(w*h) of MTCNN's box over BlazeFace's side


# The keypoints (image-left eye, image-right eye, nose, mouth, image-left ear, image-right ear) of a face
# found on a mirrored tile, once mapped back, name the other eye and ear: this order puts them back.
MIRRORED_ORDER = [1, 0, 2, 3, 5, 4]


@dataclass(frozen=True)
class Level:
    """One scale of the search: ``side`` image pixels are shown to the network as its input side, on
    square canvases of ``canvas`` image pixels (a multiple of ``side``) at ``origins``."""

    side: float
    canvas: float
    origins: list[tuple[float, float]]


def pyramid(width: int, height: int, min_face: float) -> list[Level]:
    """The levels a photo is searched at, coarsest first, in image pixels.

    The finest level's scale is just fine enough that a ``min_face`` face is ``SMALLEST_FACE`` of the
    network's side; each coarser level's is ``LARGEST_FACE / SMALLEST_FACE`` times coarser, so every
    face size falls in one level's reliable range; the last level is the whole photo. Canvases of a
    level overlap by the largest face it must find, so each such face lies whole in one canvas; of
    ``CANVAS_MULTIPLES`` the one covering the level with the fewest network pixels is used."""
    longest = float(max(width, height))
    levels = []
    side = max(1.0, min_face) / SMALLEST_FACE
    while side < longest:
        overlap = (LARGEST_FACE + ROUNDING_PIXELS / SHORT_RANGE.side) * side
        covers = []
        for multiple in CANVAS_MULTIPLES:
            canvas = multiple * side
            origins = [(x, y) for y in _starts(height, canvas, overlap) for x in _starts(width, canvas, overlap)]
            covers.append((len(origins) * multiple**2, multiple, Level(side, canvas, origins)))
        levels.append(min(covers, key=lambda cover: cover[:2])[2])
        side *= LARGEST_FACE / SMALLEST_FACE
    levels.append(Level(longest, longest, [(0.0, 0.0)]))
    return levels[::-1]


def _starts(extent: int, tile: float, overlap: float) -> list[float]:
    """Tile origins along one axis: covering ``extent`` with neighbours sharing ``overlap``."""
    if tile >= extent:
        return [0.0]
    count = math.ceil((extent - overlap) / (tile - overlap))
    step = (extent - tile) / (count - 1) if count > 1 else 0.0
    return [i * step for i in range(count)]


def cut_tile(image: Image.Image, left: float, top: float, side: float, size: int) -> np.ndarray:
    """The ``size`` x ``size`` tile of ``image`` at (left, top, side), as uint8 RGB; the part of the
    square outside the photo is black (letterboxing). A big square is first shrunk by a whole factor
    (``REDUCING_GAP``): the same tile to a fraction of a grey level, for a fraction of the time."""
    scale = size / side
    x0, y0 = max(0.0, left), max(0.0, top)
    x1, y1 = min(float(image.width), left + side), min(float(image.height), top + side)
    if x1 - x0 < 1 or y1 - y0 < 1:  # the square lies outside the photo
        return np.zeros((size, size, 3), np.uint8)
    width, height = min(size, max(1, round((x1 - x0) * scale))), min(size, max(1, round((y1 - y0) * scale)))
    shrunk = image.resize((width, height), Image.Resampling.BILINEAR, box=(x0, y0, x1, y1), reducing_gap=REDUCING_GAP)
    part = np.asarray(shrunk, np.uint8)
    if (width, height) == (size, size):
        return part
    tile = np.zeros((size, size, 3), np.uint8)
    ox, oy = min(size - width, round((x0 - left) * scale)), min(size - height, round((y0 - top) * scale))
    tile[oy : oy + height, ox : ox + width] = part
    return tile


class BlazeFaceDetector:
    """``--detector blazeface``: BlazeFace over a pyramid sized by ``min_face``, as ``faces.Face``
    objects in the same terms as MTCNN's (box, eye and mouth landmarks), so crops, rows and
    ``--min-face`` mean one thing whichever detector found the face."""

    name = "blazeface"
    vendored_files = (SHORT_RANGE.file, ONET_FILE)

    def __init__(self, min_face: float, min_score: float, model: BlazeFaceModel = SHORT_RANGE) -> None:
        self.min_face = min_face
        self.min_score = min_score
        self.model = model
        self._network: BlazeFaceNetwork | None = None
        self._verifier: OnetVerifier | None = None

    def _net(self) -> BlazeFaceNetwork:
        if self._network is None:
            self._network = BlazeFaceNetwork(self.model)
        return self._network

    def _onet(self) -> OnetVerifier:
        if self._verifier is None:
            self._verifier = OnetVerifier()
        return self._verifier

    def detect(self, image: Image.Image, scale: float = 1.0) -> list[Face]:
        image = images.to_rgb(image)
        verifier = self._onet()  # loaded (and its file checked) for every photo, not only those with unsure faces
        faces = [as_mtcnn_face(box, points, score) for score, box, points in self.detect_raw(image, scale)]
        faces = [face for face in faces if face.side * scale >= self.min_face and _confirmed(verifier, image, face)]
        faces.sort(key=lambda f: -f.width * f.height)
        return faces

    def smallest_face(self, image: Image.Image, scale: float) -> float:
        """The smallest face searched for, in pixels of ``image``: ``min_face`` original pixels, but
        no smaller than MTCNN finds on its ``DETECT_SIDE`` copy (searching costs the area over the
        square of this, and the two detectors should agree on which faces are too small)."""
        return max(self.min_face / scale, MTCNN_MIN_FACE * max(image.size) / DETECT_SIDE)

    def detect_raw(self, image: Image.Image, scale: float = 1.0) -> list[Detection]:
        """(score, box x0 y0 x1 y1, 6 keypoints) of each face in BlazeFace's own terms, in image pixels.

        Two passes: the pyramid proposes faces at a permissive score, then each proposal gets a
        second look on tiles centred on it, where the face fills ``SECOND_LOOK_FACES`` of the tile
        (the scale the network knows best). Only what scores ``min_score`` there is kept, with the box
        and keypoints of that second look (``_second_look``): faces missed at the edge of a level's range
        are rescued, and textures that looked like a face at one scale fall away."""
        image = images.to_rgb(image)
        if image.width < 1 or image.height < 1:
            return []
        levels = pyramid(image.width, image.height, self.smallest_face(image, scale) / MTCNN_SIDE_PER_BOX_SIDE)
        proposals = self._search(image, levels, PROPOSAL_SCORE)
        looks = [self._second_look(image, box) for _, box, _ in proposals]
        return without_nested(
            merged([look for look in looks if look is not None and look[0] >= self.min_score]), SURE_SCORE
        )

    def _search(self, image: Image.Image, levels: list[Level], threshold: float) -> list[Detection]:
        """Every detection on the canvases of ``levels`` (see ``pyramid``), merged. Each level is one
        resize, its canvases slices of that; the finest is resized from the photo and each coarser one
        from the level before it, which costs a fraction of shrinking the whole photo again."""
        net = self._net()
        found = []
        scaled = image
        for level in reversed(levels):
            scale = self.model.side / level.side
            canvas = round(level.canvas * scale)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            scaled = scaled.resize(size, Image.Resampling.BILINEAR)
            pixels = np.asarray(scaled, np.uint8)
            for x, y in level.origins:
                ox, oy = round(x * scale), round(y * scale)
                tile = _padded(pixels[oy : oy + canvas, ox : ox + canvas], canvas)
                found += _in_image(net.run(tile, threshold), ox / scale, oy / scale, 1 / scale)
        return merged(found)

    def _second_look(self, image: Image.Image, box: np.ndarray) -> Detection | None:
        """The best look at ``box`` on tiles centred on it at the network's best scales
        (``SECOND_LOOK_FACES``), each score averaged with the mirrored tile's (a face is a face either
        way round; textures that fooled the network once seldom do so twice). The score is the best
        look's; the box and keypoints blend, by score, every detection in those tiles (plain and
        mirrored) that overlaps the best look's plain one: each errs a little on its own, and the crop
        the model sees should not move with one detection's error. The tiles run as one batch."""
        network_side = self.model.side
        tiles, places = [], []
        for fraction in SECOND_LOOK_FACES:
            side = math.sqrt(max(box[2] - box[0], 1.0) * max(box[3] - box[1], 1.0)) / fraction
            left, top = (box[0] + box[2]) / 2 - side / 2, (box[1] + box[3]) / 2 - side / 2
            tile = cut_tile(image, left, top, side, network_side)
            tiles += [tile, tile[:, ::-1]]
            places.append((left, top, side / network_side))
        hits = self._net().run_batch(np.stack(tiles), [PROPOSAL_SCORE, MIRROR_SCORE] * len(places))
        looks = [_look(box, hits[2 * k], hits[2 * k + 1], *place, network_side) for k, place in enumerate(places)]
        looks = [look for look in looks if look is not None]
        if not looks:
            return None
        score, sightings = max(looks, key=lambda look: look[0])
        anchor = sightings[0][1]  # the best look's plain detection: others count only where they agree with it
        agreeing = [s for _, found in looks for s in found if overlap(s[1], anchor) > NMS_IOU]
        _, blended_box, blended_points = blended(agreeing)
        return score, blended_box, blended_points


def _look(
    box: np.ndarray, plain_hits: Hits, mirrored_hits: Hits, left: float, top: float, per_pixel: float, tile_side: int
):
    """One second look at ``box`` from its ``tile_side`` tile at (``left``, ``top``), ``per_pixel`` photo
    pixels a tile pixel: None when the plain tile shows no face there, else (the mean of the plain and mirrored
    scores, a missing mirror counting 0; the detections as (score, box, keypoints), the mirrored one's
    keypoints put back in the plain order)."""
    plain = _best_overlapping(_placed(plain_hits, left, top, per_pixel), box)
    if plain is None:
        return None
    mirrored = _best_overlapping(_placed(mirrored_hits, left, top, per_pixel, mirrored_width=tile_side), box)
    if mirrored is None:
        return plain[0] / 2, [plain]
    return (plain[0] + mirrored[0]) / 2, [plain, (mirrored[0], mirrored[1], mirrored[2][MIRRORED_ORDER])]


def _best_overlapping(hits: Hits, box: np.ndarray) -> Detection | None:
    """The best-scoring hit that overlaps ``box`` enough to be the same face, if any."""
    same = np.flatnonzero(overlaps(hits.boxes, box) > NMS_IOU)
    if not len(same):
        return None
    best = same[np.argmax(hits.scores[same])]
    return float(hits.scores[best]), hits.boxes[best], hits.keypoints[best]


def _confirmed(verifier: OnetVerifier, image: Image.Image, face: Face) -> bool:
    """A face scoring ``SURE_SCORE`` stands; a less certain one needs O-Net's agreement."""
    return face.score >= SURE_SCORE or verifier.face_probability(image, face) >= ONET_MIN_PROBABILITY


def _padded(tile: np.ndarray, size: int) -> np.ndarray:
    """``tile`` on a black ``size`` x ``size`` square (tiles at the photo's right and bottom edges)."""
    if tile.shape[0] == size and tile.shape[1] == size:
        return tile
    square = np.zeros((size, size, 3), np.uint8)
    square[: tile.shape[0], : tile.shape[1]] = tile
    return square


def _in_image(hits: Hits, left: float, top: float, per_pixel: float) -> list[Detection]:
    """A canvas's hits as (score, box x0 y0 x1 y1, keypoints) in photo pixels (see ``_placed``)."""
    placed = _placed(hits, left, top, per_pixel)
    return list(zip(placed.scores.tolist(), placed.boxes, placed.keypoints, strict=True))


def _placed(hits: Hits, left: float, top: float, per_pixel: float, mirrored_width: int | None = None) -> Hits:
    """Hits on an input whose corner lies at (``left``, ``top``) in the photo, ``per_pixel`` photo
    pixels an input pixel, in photo pixels; an input that was mirrored (``mirrored_width`` pixels
    wide) has its hits turned back first."""
    boxes, points = hits.boxes, hits.keypoints
    if mirrored_width is not None:
        boxes = np.stack([mirrored_width - boxes[:, 2], boxes[:, 1], mirrored_width - boxes[:, 0], boxes[:, 3]], axis=1)
        points = np.stack([mirrored_width - points[:, :, 0], points[:, :, 1]], axis=2)
    origin = np.array([left, top])
    return Hits(hits.scores, boxes * per_pixel + np.tile(origin, 2), points * per_pixel + origin)


def as_mtcnn_face(box: np.ndarray, points: np.ndarray, score: float) -> Face:
    """A BlazeFace box and keypoints in MTCNN's terms: its box (taller, centred higher, measured by
    ``benchmarks/detector_framing.py``) and landmark names, the mouth centre standing for both corners."""
    side = math.sqrt(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6))
    (lx, ly), (rx, ry), nose, mouth = points[0], points[1], points[2], points[3]
    angle = math.atan2(ry - ly, rx - lx)  # the face's roll: its "up" is not the photo's
    up = np.array([math.sin(angle), -math.cos(angle)])
    centre = (box[:2] + box[2:]) / 2 + up * MTCNN_CENTRE_ABOVE * side
    width, height = side * MTCNN_WIDTH_PER_SIDE, side * MTCNN_HEIGHT_PER_SIDE
    mouth = mouth + up * MTCNN_MOUTH_ABOVE * side
    marks = {
        "left_eye": (float(lx), float(ly)),
        "right_eye": (float(rx), float(ry)),
        "nose": (float(nose[0]), float(nose[1])),
        "mouth_left": (float(mouth[0]), float(mouth[1])),
        "mouth_right": (float(mouth[0]), float(mouth[1])),
    }
    return Face(float(centre[0] - width / 2), float(centre[1] - height / 2), width, height, float(score), marks)
