"""Inference engines for scans: Keras (the reference) and LiteRT/TFLite with XNNPACK (the fast one).

``train`` writes ``agebatch.tflite`` beside ``agebatch.keras``; ``Predictor`` uses it when present
(``--engine auto``), because on a CPU it runs the same float32 network faster with the same outputs
(``docs/performance.md``; ``benchmarks/throughput.py`` measures it). The Keras model stays the
reference: Grad-CAM, evaluation and training use it.

The twin carries a record of which Keras file it was made from (``agebatch.tflite.json``, written and
checked by ``modelfile.twin``). When it matches, a scan never loads Keras or TensorFlow at all
(unless the face detector needs them): a ``--detector none`` scan starts in a fraction of the time
and needs a fraction of the memory. A twin without a matching record is checked against the loaded
Keras model instead.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from agebatch.contract import AGE_BINS


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter  # the maintained runtime
    except ImportError:  # pragma: no cover - fall back to TensorFlow's bundled (deprecated) copy
        import tensorflow as tf

        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        Interpreter = tf.lite.Interpreter
    return Interpreter


class TFLiteRunner:
    """Runs a ``.tflite`` agebatch model on float32 batches; returns ``(ages, female_probs)``.

    Not thread-safe (one interpreter); the scanner calls it from one thread only.
    """

    def __init__(self, path: str | os.PathLike | None = None, threads: int | None = None, content: bytes | None = None):
        from agebatch.common.quiet import native_stderr_silenced

        source = {"model_content": content} if content is not None else {"model_path": str(path)}
        with native_stderr_silenced():  # the runtime announces its XNNPACK delegate on fd 2
            self.interpreter = _interpreter_class()(**source, num_threads=threads or os.cpu_count() or 1)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        shape = tuple(int(d) for d in self.input["shape"])
        widths = sorted(int(d["shape"][-1]) for d in self.interpreter.get_output_details())
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or 1 not in widths or 2 not in widths:
            raise ValueError(f"not an agebatch model: input {shape}, output widths {widths}")
        self.image_size = shape[1]
        self._batch = None

    def _outputs(self) -> tuple:
        """(ages, female probabilities) and, for a model with an age distribution, the distribution."""
        outputs = [self.interpreter.get_tensor(d["index"]) for d in self.interpreter.get_output_details()]
        age = next(o for o in outputs if o.shape[-1] == 1)
        gender = next(o for o in outputs if o.shape[-1] == 2)
        distribution = next((o for o in outputs if o.shape[-1] == AGE_BINS), None)
        if distribution is None:
            return age.reshape(-1), gender[:, 1]
        return age.reshape(-1), gender[:, 1], distribution

    def __call__(self, batch: np.ndarray) -> tuple:
        if self._batch != len(batch):
            from agebatch.common.quiet import native_stderr_silenced

            with native_stderr_silenced():
                self.interpreter.resize_tensor_input(self.input["index"], [len(batch), *self.input["shape"][1:]])
                self.interpreter.allocate_tensors()
            self._batch = len(batch)
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(batch, dtype=np.float32))
        self.interpreter.invoke()
        return tuple(output.copy() for output in self._outputs())  # the interpreter reuses its buffers
