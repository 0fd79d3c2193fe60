"""A KServe 0.21 model that answers each BYTES input as the text its model received (an echo):
what a remote candidate's BYTES become on the server's side. It runs inside the KServe virtual
environment, never in abvoc's.

    python kserve_echo.py --model_name echo --http_port 8080
"""

from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve import model_server as kserve_model_server


class EchoModel(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        outputs = []
        for i in payload.inputs:
            values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                      for v in i.as_numpy().reshape(-1)]
            outputs.append(InferOutput(name="output", shape=list(i.shape), datatype="BYTES",
                                       data=values))
        return InferResponse(response_id=payload.id or "", model_name=self.name,
                             infer_outputs=outputs)


if __name__ == "__main__":
    args, _ = kserve_model_server.parser.parse_known_args()
    ModelServer().start([EchoModel(args.model_name)])
