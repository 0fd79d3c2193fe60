"""A small KServe 0.21 model server: an ONNX model served through onnxruntime on V2 REST. It runs
inside the KServe virtual environment (scripts/install-inference-servers.sh), never in abvoc's.

    python kserve_onnx.py --model_name iris --model_path model.onnx --http_port 8080
"""

import argparse

import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve import model_server as kserve_model_server

V2 = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "bool": "BOOL"}


class OnnxModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self._path = path
        self.load()

    def load(self) -> bool:
        self._session = ort.InferenceSession(self._path, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        feed = {i.name: i.as_numpy() for i in payload.inputs}
        results = self._session.run(self._outputs, feed)
        outputs = []
        for name, array in zip(self._outputs, results, strict=True):
            out = InferOutput(name=name, shape=list(array.shape), datatype=V2[array.dtype.name])
            out.set_data_from_numpy(array, binary_data=False)
            outputs.append(out)
        # Binary outputs when the request asks (the binary tensor data extension).
        return InferResponse(response_id=payload.id or "", model_name=self.name,
                             infer_outputs=outputs, use_binary_outputs=payload.use_binary_outputs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve_model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    ModelServer().start([OnnxModel(args.model_name, args.model_path)])
