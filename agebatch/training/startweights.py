"""Where a run's weights start: fresh, continued from a saved model (or the average of several), or warm-started.

``load_checked`` loads a saved model as scans do and checks it takes this run's faces; ``saved_start``
gives the model a run continues from and ``training_network`` builds the run's network from it (or
from ImageNet, or with the layers of a model to warm-start from copied in). ``bare_network`` and
``inference_copy`` give the network without its augmentation layers, to copy weights into and to save.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from agebatch.training.config import TrainConfig

if TYPE_CHECKING:  # keras loads only when training starts
    import keras

log = logging.getLogger(__name__)


def load_checked(path: str, image_size: int, role: str) -> keras.Model:
    """A saved model (a teacher, or the one to continue from), checked to take this run's faces: before
    any face is decoded, so a wrong file fails in seconds rather than after minutes of decoding. Loaded
    as scans load a model (``modelfile.load.load_model``: the archive checked first, safe mode, float32)."""
    from agebatch.modelfile.load import ModelLoadError, load_model

    try:
        model, size = load_model(path)
    except ModelLoadError as exc:
        raise ValueError(f"{role}: {exc}") from exc
    if size != image_size:
        raise ValueError(f"{role} {path} takes {size}x{size} faces, this run uses {image_size}x{image_size}")
    return model


def saved_start(config: TrainConfig) -> keras.Model | None:
    """The saved model this run continues from (``config.init_from``), averaged with the models of
    ``config.average_with`` when there are any; None for a run that starts afresh."""
    if not config.init_from:
        return None
    start = load_checked(config.init_from, config.image_size, "model to continue from")
    if not config.average_with:
        return start
    others = [load_checked(path, config.image_size, "model to average with") for path in config.average_with]
    return averaged_start([start, *others], [config.init_from, *config.average_with], config)


def training_network(config: TrainConfig, start=None, warm=None) -> keras.Model:
    """This run's network, augmentation included: the weights of ``start`` (see ``saved_start``) when
    continuing, else ImageNet's backbone (``config.backbone_weights``) with the layers of ``warm`` (a
    model to warm-start from) copied in."""
    from agebatch.training.network import build_model

    model = build_model(
        config.image_size,
        None if start is not None else config.backbone_weights,  # a continued run's weights replace them
        config.dropout,
        config.alpha,
        color_jitter=config.color_jitter,
        age_head=config.age_head,
    )
    if warm is not None:
        warm_start(warm, model)
    if start is not None:
        continue_from(start, model, config.init_from)
    return model


def continue_from(source, target, path: str) -> None:
    """Start ``target`` from the weights of the saved model at ``path`` (``source``).

    A calibrated model (what ``train`` writes, and what ships) keeps its trained age head as
    ``age_raw`` behind the calibration map: that is the head training continues. The map itself is
    refitted at the end of the run.
    """
    from agebatch.contract import AGE_OUTPUT
    from agebatch.training.calibration import RAW_AGE

    calibrated = any(layer.name == RAW_AGE for layer in source.layers)
    try:
        copy_weights(source, target, {AGE_OUTPUT: RAW_AGE} if calibrated else None)
    except ValueError as exc:  # another width (alpha) or layout: layer shapes or names differ
        raise ValueError(f"{path} is not this run's network, cannot continue from it ({exc})") from exc


def average_models(models: list, paths: list[str]) -> None:
    """Set the first of ``models`` (one architecture) to the mean of all their weights, tensor by tensor.

    Networks fine-tuned from one saved model stay in one basin, so their average (a "model soup") is
    usually at least as good as each of them; independently trained networks do not average.
    """
    first = models[0].get_weights()
    total = [np.asarray(w, "float64") for w in first]
    for other, path in zip(models[1:], paths[1:]):
        weights = other.get_weights()
        if [w.shape for w in weights] != [w.shape for w in first]:
            raise ValueError(f"{path} is not the same network as {paths[0]}, cannot average them")
        total = [t + w for t, w in zip(total, weights)]
    models[0].set_weights([(t / len(models)).astype(w.dtype) for t, w in zip(total, first)])


def averaged_start(models: list, paths: list[str], config: TrainConfig):
    """A network of this run holding the mean of the saved ``models``' weights: each is first continued
    into a fresh copy of the run's network (``continue_from``: a calibrated model gives its trained head,
    not its calibration map, and a model of another shape is a clear error), then the copies are averaged."""
    copies = []
    for model, path in zip(models, paths):
        copy = bare_network(config)
        continue_from(model, copy, path)
        copies.append(copy)
    average_models(copies, paths)
    log.info("continuing from the average of %s", ", ".join(paths))
    return copies[0]


def warm_start(source, target) -> list[str]:
    """Copy into ``target`` the weights of every layer ``source`` has under the same name and shape.

    For a new head on a trained network: the backbone and the gender head come over, a head of
    another shape (the age distribution) starts fresh. An ensemble gives its first network. Returns
    the names of the layers copied.
    """
    from agebatch.contract import AGE_OUTPUT, members_of

    source = (members_of(source) or [source])[0]
    known = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in target.layers:
        other = known.get(layer.name)
        if not layer.trainable_weights or other is None or layer.name == AGE_OUTPUT and not layer.trainable:
            continue
        values = other.get_weights()
        if [w.shape for w in values] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(values)
            copied.append(layer.name)
    if not copied:
        raise ValueError("the model to warm-start from shares no layer with this run's network")
    log.info("warm start: copied %s", ", ".join(copied))
    return copied


def copy_weights(source, target, renamed: dict[str, str] | None = None) -> None:
    """Copy weights layer by layer (matched by name, or by ``renamed[name]`` in ``source``), e.g. from
    a checkpoint into a fresh network."""
    renamed = renamed or {}
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(renamed.get(layer.name, layer.name)).get_weights())


def bare_network(config: TrainConfig):
    """This run's network without augmentation layers and with fresh weights, to copy weights into."""
    from agebatch.training.network import build_model

    return build_model(config.image_size, None, config.dropout, config.alpha, augment=False, age_head=config.age_head)


def inference_copy(trained, config: TrainConfig):
    """The trained network without augmentation layers: what scan loads, and smaller to run."""
    clean = bare_network(config)
    copy_weights(trained, clean)
    return clean
