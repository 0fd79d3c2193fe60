"""Reading a Dash callback's JSON answer (its component tree) in tests."""

from __future__ import annotations

from typing import Any


def find(node: Any, component_id: str) -> dict[str, Any] | None:
    """The component with this id in a callback's answer, or None."""
    if isinstance(node, list):
        return next((f for n in node if (f := find(n, component_id)) is not None), None)
    if not isinstance(node, dict):
        return None
    props = node.get("props", {})
    if props.get("id") == component_id:
        return node
    return find(props.get("children"), component_id)


def text(node: Any) -> str:
    """The text a component shows (its children's text, joined)."""
    if isinstance(node, list):
        return "".join(text(n) for n in node)
    if isinstance(node, dict):
        return text(node.get("props", {}).get("children"))
    return "" if node is None else str(node)
