"""The gameplay bundles' post-processing stage, copied into each bundle as `post.py`: action
logits to the action label, its confidence and the class probabilities.

It imports nothing of abvoc, as a team's own stage code would not; the class order is the
game's `ACTIONS` (a test checks the two agree).
"""

import numpy as np

CLASSES = np.array(["idle", "up", "down", "left", "right", "attack", "defend"], dtype=object)


def to_action(tensors: dict) -> dict:
    logits = np.asarray(tensors["logits"], dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    best = probabilities.argmax(axis=-1)
    return {
        "label": CLASSES[best],
        "confidence": probabilities.max(axis=-1).astype(np.float32),
        "probabilities": probabilities.astype(np.float32),
    }
