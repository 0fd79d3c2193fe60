"""An MLServer custom runtime: an ONNX model served through onnxruntime. It runs inside the
MLServer 1.7.1 virtual environment (scripts/install-inference-servers.sh), never in abvoc's."""

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self.settings)
        self._session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        results = self._session.run(self._outputs, feed)
        outputs = [NumpyCodec.encode_output(name, array)
                   for name, array in zip(self._outputs, results, strict=True)]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)
