"""BlazeFace's network through LiteRT: canvases of any shape, batches of tiles, raw hits decoded.

The short-range network is convolutional, so it runs on any input whose sides are multiples of its
coarsest stride: a level of the search runs on canvases of several network sides, and a face's four
second looks run as one batch (a quarter cheaper than one by one). Each input shape needs its own
interpreter (making or resizing one costs about as much as running it), so one is kept per shape.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from agebatch.common.vendored import read_vendored

SCORE_CLIP = 100.0  # raw logits are clipped before the sigmoid, as MediaPipe does
# Interpreters one network keeps, one per input shape, the least recently used dropped beyond this:
# a detector asks for four (its 128-, 256- and 512-pixel canvases and the second looks' batch), and
# each holds memory in proportion to its input (about 185 bytes a pixel, 48 MB for 512 x 512).
KEPT_SHAPES = 4


@dataclass(frozen=True)
class BlazeFaceModel:
    """One BlazeFace variant: its file, input side and anchor layout (feature-map strides, anchors per cell)."""

    file: str
    side: int
    layers: tuple[tuple[int, int], ...]  # (stride, anchors per cell), in output order

    @property
    def step(self) -> int:
        """What an input's sides must be multiples of: the coarsest stride, where anchors sit evenly."""
        return max(stride for stride, _ in self.layers)

    def anchors(self, height: int, width: int) -> np.ndarray:
        """(N, 2) anchor centres (x, y) in input pixels of a ``height`` x ``width`` input, in the
        order the network's outputs use (row by row, per feature map)."""
        centres = []
        for stride, per_cell in self.layers:
            ys = (np.arange(math.ceil(height / stride), dtype=np.float32) + 0.5) * stride
            xs = (np.arange(math.ceil(width / stride), dtype=np.float32) + 0.5) * stride
            grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
            centres.append(np.repeat(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1), per_cell, axis=0))
        return np.concatenate(centres)


SHORT_RANGE = BlazeFaceModel("blazeface_short_range.tflite", 128, ((8, 2), (16, 6)))


@dataclass
class Hits:
    """The faces one input shows, in its own pixels: scores (n,), boxes (n, 4) as x0, y0, x1, y1,
    and the six keypoints (n, 6, 2) (image-left eye, image-right eye, nose, mouth, ears)."""

    scores: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


class BlazeFaceNetwork:
    """One model's interpreters, one per input shape in use (see ``KEPT_SHAPES``). ``run`` is safe
    to call from several threads (one at a time)."""

    def __init__(self, model: BlazeFaceModel = SHORT_RANGE, threads: int = 1) -> None:
        self.model = model
        self.threads = threads
        self._content = read_vendored(model.file)
        self._runners: OrderedDict[tuple[int, int, int], _ShapeRunner] = OrderedDict()
        self._lock = threading.Lock()
        self._runner((1, model.side, model.side))  # a damaged model file fails here, before any photo

    def _runner(self, shape: tuple[int, int, int]) -> _ShapeRunner:
        """The interpreter for (batch, height, width), made if needed (the least recently used one
        dropped beyond ``KEPT_SHAPES``)."""
        if shape in self._runners:
            self._runners.move_to_end(shape)
            return self._runners[shape]
        runner = _ShapeRunner(self._content, self.model, shape, self.threads)
        self._runners[shape] = runner
        if len(self._runners) > KEPT_SHAPES:
            self._runners.popitem(last=False)
        return runner

    def run(self, canvas: np.ndarray, min_score: float) -> Hits:
        """Faces scoring at least ``min_score`` in one RGB uint8 ``canvas`` whose sides are multiples
        of ``model.step``."""
        return self.run_batch(canvas[None], [min_score])[0]

    def run_batch(self, tiles: np.ndarray, min_scores: list[float]) -> list[Hits]:
        """``run`` for a batch of same-shaped tiles (n, h, w, 3), each with its own ``min_score``."""
        if tiles.ndim != 4 or tiles.shape[3] != 3:
            raise ValueError(f"BlazeFace takes RGB tiles (n, height, width, 3), not an array of shape {tiles.shape}")
        batch, height, width = tiles.shape[:3]
        step = self.model.step
        if height % step or width % step or not height or not width:
            raise ValueError(f"a BlazeFace input's sides are multiples of {step} pixels, not {height}x{width}")
        inputs = tiles.astype(np.float32)
        np.divide(inputs, 127.5, out=inputs)
        np.subtract(inputs, 1.0, out=inputs)
        with self._lock:
            runner = self._runner((batch, height, width))
            raw, logits = runner.invoke(inputs)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
        return [_decoded(raw[i], scores[i], runner.anchors, min_scores[i]) for i in range(batch)]


def _decoded(raw: np.ndarray, scores: np.ndarray, anchors: np.ndarray, min_score: float) -> Hits:
    """The anchors scoring at least ``min_score``, their regressions (input pixels, relative to the
    anchor) turned into boxes and keypoints."""
    keep = np.flatnonzero(scores >= min_score)
    values, centres = raw[keep].astype(np.float64), anchors[keep].astype(np.float64)
    middle, half = centres + values[:, 0:2], values[:, 2:4] / 2
    boxes = np.concatenate([middle - half, middle + half], axis=1)
    keypoints = values[:, 4:16].reshape(-1, 6, 2) + centres[:, None, :]
    return Hits(scores[keep], boxes, keypoints)


class _ShapeRunner:
    """One interpreter with its input resized to (batch, height, width, 3), and its anchors."""

    def __init__(self, content: bytes, model: BlazeFaceModel, shape: tuple[int, int, int], threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from agebatch.common import quiet

        batch, height, width = shape
        with quiet.native_stderr_silenced():
            self._interpreter = Interpreter(model_content=content, num_threads=threads)
            self._input = self._interpreter.get_input_details()[0]["index"]
            if shape != (1, model.side, model.side):
                self._interpreter.resize_tensor_input(self._input, [batch, height, width, 3])
            self._interpreter.allocate_tensors()
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._boxes, self._scores = outputs[0]["index"], outputs[1]["index"]
        self.anchors = model.anchors(height, width)
        # The network's outputs hold each feature map's anchors for the whole batch in turn.
        self._per_map = [
            math.ceil(height / stride) * math.ceil(width / stride) * per_cell for stride, per_cell in model.layers
        ]

    def invoke(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The raw box regressions (n, N, 16) and score logits (n, N) of one (n, h, w, 3) input."""
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        raw, logits = self._interpreter.get_tensor(self._boxes)[0], self._interpreter.get_tensor(self._scores)[0, :, 0]
        return self._per_tile(raw, len(batch)), self._per_tile(logits, len(batch))

    def _per_tile(self, output: np.ndarray, tiles: int) -> np.ndarray:
        """An output laid out feature map by feature map (each holding every tile's anchors) as
        (tiles, N, ...), each tile's anchors in the order of ``anchors``."""
        if tiles == 1:
            return output[None]
        parts, start = [], 0
        for count in self._per_map:
            parts.append(output[start : start + tiles * count].reshape(tiles, count, *output.shape[1:]))
            start += tiles * count
        return np.concatenate(parts, axis=1)
