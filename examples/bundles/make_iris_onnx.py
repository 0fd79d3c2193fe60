"""Make the example bundle's model: a tiny classifier of iris-like flowers, exported to ONNX.

The data are generated, not downloaded: three classes of four measurements drawn around the
class means of Fisher's iris data. A two-layer network is trained with torch for a few hundred
steps (seconds on a CPU) and exported with a variable batch axis, input "features" [-1, 4] FP32,
output "probabilities" [-1, 3]. Run it from the repository root:

    python examples/bundles/make_iris_onnx.py   # writes examples/bundles/iris-onnx/model.onnx
    python examples/bundles/make_iris_onnx.py --dataset   # writes iris-onnx/offline.jsonl

The offline dataset is the bundle's own labeled test set for `abvoc offline-test iris-onnx
--dataset examples/bundles/iris-onnx/offline.jsonl`: one flower a line, measurements rounded to
millimetres as a ruler gives them, in two slices — "lab" (drawn like the training data) and
"field" (measured in the field: twice the spread, so harder to tell apart).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

CLASSES = ("setosa", "versicolor", "virginica")
# Per-class means and spreads (cm) of sepal length, sepal width, petal length, petal width.
MEANS = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
SPREADS = np.array([[0.35, 0.38, 0.17, 0.10], [0.52, 0.31, 0.47, 0.20], [0.64, 0.32, 0.55, 0.27]])


def make_flowers(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 4) float32 and class indices (n,) int64, deterministic from the seed."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(m, s, size=(n_per_class, 4))
                        for m, s in zip(MEANS, SPREADS, strict=True)])
    y = np.repeat(np.arange(len(CLASSES)), n_per_class)
    return x.astype(np.float32), y.astype(np.int64)


class IrisNet(nn.Module):
    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.layers(features), dim=-1)


def train(seed: int = 0, steps: int = 400) -> tuple[IrisNet, float]:
    """The trained network and its accuracy on a held-out generated set."""
    torch.manual_seed(seed)
    x, y = make_flowers(200, seed)
    net = IrisNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.nll_loss(torch.log(net(xt) + 1e-9), yt)
        loss.backward()
        opt.step()
    xv, yv = make_flowers(100, seed + 1)
    with torch.no_grad():
        accuracy = float((net(torch.from_numpy(xv)).argmax(-1).numpy() == yv).mean())
    return net.eval(), accuracy


def export(net: IrisNet, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.zeros(1, 4),), str(path), dynamo=False, opset_version=17,
                          input_names=["features"], output_names=["probabilities"],
                          dynamic_axes={"features": {0: "batch"}, "probabilities": {0: "batch"}})


def write_dataset(path: Path, n_per_class: int = 10, seed: int = 7) -> int:
    """The labeled JSONL test set; returns the number of lines written."""
    rng = np.random.default_rng(seed)
    lines = []
    for slice_, spread in (("lab", 1.0), ("field", 2.0)):
        for k, name in enumerate(CLASSES):
            x = np.clip(rng.normal(MEANS[k], SPREADS[k] * spread, size=(n_per_class, 4)), 0.1,
                        None)
            lines += [json.dumps({"inputs": {"features": [round(float(v), 1) for v in row]},
                                  "label": name, "slice": slice_}) for row in x]
    order = rng.permutation(len(lines))
    path.write_text("".join(lines[i] + "\n" for i in order))
    return len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "iris-onnx" / "model.onnx")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", action="store_true",
                        help="write only the labeled offline test set (offline.jsonl)")
    args = parser.parse_args()
    if args.dataset:
        path = Path(__file__).resolve().parent / "iris-onnx" / "offline.jsonl"
        print(f"wrote {path} ({write_dataset(path)} examples)")
        return
    net, accuracy = train(args.seed)
    export(net, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); held-out accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
