"""Grad-CAM: which part of a face drove the age or gender estimate.

For the chosen head, the gradient of its output with respect to the last convolutional feature map
(MobileNetV2's final block; 4x4 cells for a 128x128 face) weights each channel; the weighted, rectified
sum is the class-activation map. It is upsampled to the face crop and put back where the crop came from
in the photo, undoing the crop's rotation, so the heat map lines up with the picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from agebatch.contract import AGE_OUTPUT, GENDER_OUTPUT
from agebatch.scanning import faces
from agebatch.scanning.options import EXPLAIN_HEADS


def _feature_layer(model):
    """The last layer whose output is a 4-D feature map (the backbone, or a toy model's last conv)."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if shape is not None and len(shape) == 4 and layer.name != model.layers[0].name:
            return layer
    raise ValueError("model has no convolutional feature map to explain")


def _resolve(value, tensors: dict):
    """Replace Keras' serialised tensor references in a node's call arguments by live tensors."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, _, index = value["config"]["keras_history"]
        out = tensors[name]
        return out[index] if isinstance(out, (list, tuple)) else out
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, tensors) for k, v in value.items()}
    return value


def probe_model(model, layer_name: str):
    """A model giving ``[output of layer_name, model outputs]`` for a functional model.

    A nested backbone's ``.output`` belongs to its own inner graph, not to the outer model's, so the
    outer graph is re-traced from the model's (public) config: each layer is called on the tensors its
    config names as inputs, giving a symbolic tensor for every layer of the outer graph.
    """
    import keras

    config = model.get_config()
    inputs = [keras.Input(shape=tuple(t.shape[1:]), name=f"probe_{i}") for i, t in enumerate(model.inputs)]
    input_layers = config["input_layers"]
    if input_layers and isinstance(input_layers[0], str):  # a single input is stored unwrapped
        input_layers = [input_layers]
    tensors = {entry[0]: tensor for entry, tensor in zip(input_layers, inputs)}
    for entry in config["layers"]:
        name = entry["name"]
        if name in tensors:
            continue
        for node in entry["inbound_nodes"]:
            args = _resolve(node["args"], tensors)
            kwargs = _resolve(node.get("kwargs", {}), tensors)
            kwargs.pop("mask", None) if kwargs.get("mask") is None else None
            tensors[name] = model.get_layer(name)(*args, **kwargs)
    named = {AGE_OUTPUT: tensors[AGE_OUTPUT], GENDER_OUTPUT: tensors[GENDER_OUTPUT]}
    return keras.Model(inputs, [tensors[layer_name], named])


def grad_cam(model, face: np.ndarray, head: str = "gender", gender_class: int | None = None) -> np.ndarray:
    """Grad-CAM of ``head`` for one uint8 face (size x size x 3); returns a [0, 1] map of the same size.

    For the gender head the score explained is the probability of ``gender_class`` (0 male, 1 female;
    by default the predicted one); for the age head, the estimated age itself (so hot regions are
    those that raised the estimate). For an ensemble, each network's map of the ensemble's estimate
    is computed and the maps are averaged, since each network looks at the face its own way.
    """
    import tensorflow as tf

    from agebatch.contract import members_of

    if head not in EXPLAIN_HEADS:
        raise ValueError(f"head must be one of {EXPLAIN_HEADS}")
    members = members_of(model)
    if members:
        if head == "gender" and gender_class is None:
            female = model(np.asarray(face, np.float32)[None] / 255.0, training=False)[GENDER_OUTPUT][0, 1]
            gender_class = int(float(female) >= 0.5)
        cam = np.mean([grad_cam(member, face, head, gender_class) for member in members], axis=0)
        return cam / cam.max() if cam.max() > 0 else cam
    layer = _feature_layer(model)
    probe = probe_model(model, layer.name)
    batch = tf.convert_to_tensor(np.asarray(face, np.float32)[None] / 255.0)
    with tf.GradientTape() as tape:
        features, outputs = probe(batch, training=False)
        if head == "age":
            score = outputs[AGE_OUTPUT][:, 0]
        else:
            probs = outputs[GENDER_OUTPUT]
            score = tf.reduce_max(probs, axis=1) if gender_class is None else probs[:, gender_class]
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0].numpy()
    size = face.shape[0]
    if cam.max() > 0:
        cam = cam / cam.max()
    cam_image = Image.fromarray(cam.astype(np.float32), mode="F").resize(
        (size, face.shape[1]), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(cam_image), 0, 1)


def place_in_image(cam: np.ndarray, face: faces.Face, image_size: tuple[int, int], whole_image: bool) -> np.ndarray:
    """Put a crop-sized map back into photo coordinates (undoing the crop's scale and rotation)."""
    width, height = image_size
    if whole_image:
        return np.asarray(
            Image.fromarray(cam.astype(np.float32), mode="F").resize((width, height), Image.Resampling.BILINEAR)
        )
    cx, cy, side, angle = faces.framing(face)
    side_px = max(1, round(side))
    patch = Image.fromarray(cam.astype(np.float32), mode="F").resize((side_px, side_px), Image.Resampling.BILINEAR)
    if angle:
        patch = patch.rotate(-angle, resample=Image.Resampling.BILINEAR, expand=True)
    canvas = Image.new("F", (width, height), 0.0)
    canvas.paste(patch, (round(cx - patch.width / 2), round(cy - patch.height / 2)))
    return np.asarray(canvas)


@dataclass
class Explanation:
    heat: np.ndarray  # (height, width) in [0, 1], the decoded image's size
    picture: Image.Image  # photo with the heat map blended in and the predictions captioned


def explain_photo(
    result, model, head: str = "gender", face_index: int | None = None, whole_image: bool = False
) -> Explanation:
    """Grad-CAM for the faces of a ``photo.PhotoResult`` (all, or one), blended onto the photo."""
    from agebatch.scanning import drawing
    from agebatch.scanning.photo import face_in_image

    chosen = result.faces if face_index is None else [f for f in result.faces if f.index == face_index]
    if not chosen:
        raise ValueError(f"no face {face_index} in {result.path} (it has {len(result.faces)})")
    heat = np.zeros((result.image.height, result.image.width), np.float32)
    boxes = []
    for item in chosen:
        cam = grad_cam(model, item.crop, head)
        local = face_in_image(item, result.scale)
        boxes.append((local.x, local.y, local.width, local.height))
        heat = np.maximum(heat, place_in_image(cam, local, result.image.size, whole_image))
    picture = drawing.heat_overlay(result.image, heat)
    if not whole_image:
        picture = drawing.mark_faces(picture, boxes, [f.index for f in chosen])
    lines = [f"Grad-CAM of the {head} head"]
    lines += [f"face {f.index}: {drawing.label(f.prediction)}" for f in chosen]
    return Explanation(heat, drawing.with_caption(picture, lines, heat_scale=True))
