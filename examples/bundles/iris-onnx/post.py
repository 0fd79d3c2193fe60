"""The example bundle's post-processing: class probabilities to a label and its confidence."""

import numpy as np

CLASSES = np.array(["setosa", "versicolor", "virginica"], dtype=object)


def to_label(tensors: dict) -> dict:
    probabilities = tensors["probabilities"]
    best = probabilities.argmax(axis=-1)
    return {
        "label": CLASSES[best],
        "confidence": probabilities.max(axis=-1).astype(np.float32),
        "probabilities": probabilities,
    }
