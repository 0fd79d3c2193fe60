"""A kept input on a page: the image itself, or the V2 tensors as JSON (cut at a readable
length), as `feedback.item_view.describe_input` gives it."""

from __future__ import annotations

import json
from typing import Any

from dash import html
from dash.development.base_component import Component

MAX_TENSOR_CHARS = 4000


def kept_input(shown: dict[str, Any] | None, id_: str,
               missing: str = "The input is no longer kept (retention passed).") -> Component:
    if shown is None:
        return html.P(missing, id=id_)
    if shown["kind"] == "image":
        return html.Img(src=f"data:{shown['media_type']};base64,{shown['data_base64']}",
                        id=id_, alt="the input image",
                        style={"minWidth": "240px", "maxWidth": "640px",
                               "border": "1px solid #ccc", "background": "#fff"})
    text = json.dumps(shown["tensors"], indent=1)
    if len(text) > MAX_TENSOR_CHARS:
        text = text[:MAX_TENSOR_CHARS] + f"\n… ({len(text)} characters in all)"
    return html.Pre(text, id=id_)
