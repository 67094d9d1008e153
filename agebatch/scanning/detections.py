"""One face found several times: box overlap, merging and nesting of detections.

BlazeFace's pyramid sees a face at several scales and in overlapping canvases; these functions decide
which detections are one face (blended into one, as MediaPipe does) and which are a part of a face
(mouth and chin at a finer scale) or a face with its surroundings (at a coarser one).
A detection is ``(score, box, keypoints)`` with the box as x0, y0, x1, y1.
"""

from __future__ import annotations

import numpy as np

NMS_IOU = 0.3  # boxes overlapping more than this are one face
Detection = tuple[float, np.ndarray, np.ndarray]


def merge_overlapping(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[list[int]]:
    """Groups of box indices that are one face: each group is led by its best box and holds every
    box overlapping that one by more than ``iou`` (boxes are x0, y0, x1, y1). Best groups first."""
    order = [int(i) for i in np.argsort(-scores)]
    groups: list[list[int]] = []
    while order:
        best, rest = order[0], np.array(order)
        iou_with_best = overlaps(boxes[rest], boxes[best])
        groups.append([best] + [int(i) for i in rest[iou_with_best > iou] if i != best])
        # The best box leaves even when it overlaps nothing, itself included (a box of no area).
        order = [int(i) for i in rest[iou_with_best <= iou] if i != best]
    return groups


def without_nested(found: list[Detection], sure_score: float) -> list[Detection]:
    """``found`` (best first) less two kinds of detection that are not another face: part of a kept
    face (a smaller detection centred inside it: mouth and chin seen at a finer scale), and a kept sure
    face with its surroundings (a bigger detection, itself unsure, with the face's centre inside it: a
    face in a round frame seen at a coarser scale). A bigger face the network is sure of stays even with
    a surer small face over it (a child's head in front of an adult's chin)."""
    kept: list[Detection] = []
    for item in found:
        if not any(_part_of(item, k) or _surrounds(item, k, sure_score) for k in kept):
            kept.append(item)
    return kept


def _part_of(item: Detection, face: Detection) -> bool:
    """Whether ``item`` is smaller than ``face`` and centred inside its box."""
    return _area(item[1]) < _area(face[1]) and _inside(_centre(item[1]), face[1])


def _surrounds(item: Detection, face: Detection, sure_score: float) -> bool:
    """Whether ``item`` is an unsure detection bigger than the sure ``face`` and holds its centre."""
    return item[0] < sure_score <= face[0] and _area(item[1]) > _area(face[1]) and _inside(_centre(face[1]), item[1])


def _centre(box: np.ndarray) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _inside(point, box: np.ndarray) -> bool:
    """Whether ``point`` (x, y) lies in ``box`` (x0, y0, x1, y1)."""
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def _area(box: np.ndarray) -> float:
    """Area of a box (x0, y0, x1, y1)."""
    return float((box[2] - box[0]) * (box[3] - box[1]))


def overlaps(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Intersection over union of each of ``boxes`` (n, 4) with ``box`` (0 where their union has no area)."""
    width = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0.0, None)
    height = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0.0, None)
    inter = width * height
    union = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + _area(box) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    return float(overlaps(np.asarray(a)[None], b)[0])


def merged(found: list[Detection]) -> list[Detection]:
    """Overlapping detections of one face blended into one (score-weighted, as MediaPipe does:
    steadier landmarks), best first."""
    if not found:
        return []
    score = np.array([f[0] for f in found])
    box = np.stack([f[1] for f in found])
    return [blended([found[i] for i in group]) for group in merge_overlapping(box, score)]


def blended(group: list[Detection]) -> Detection:
    """Detections of one face blended by score: the first one's score, the weighted box and keypoints."""
    score = np.array([f[0] for f in group])
    weights = score / score.sum()
    box = np.tensordot(weights, np.stack([f[1] for f in group]), axes=1)
    return float(score[0]), box, np.tensordot(weights, np.stack([f[2] for f in group]), axes=1)
