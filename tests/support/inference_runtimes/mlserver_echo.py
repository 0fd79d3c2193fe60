"""An MLServer 1.7.1 model that answers its BYTES input as the text its model received (an echo),
decoded by the input's content type as MLServer's codecs read it. It runs inside the MLServer
virtual environment, never in abvoc's."""

from mlserver import MLModel
from mlserver.codecs import StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class EchoModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        values = self.decode(payload.inputs[0], default_codec=StringCodec)
        text = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in values]
        return InferenceResponse(model_name=self.name,
                                 outputs=[StringCodec.encode_output("output", text)])
