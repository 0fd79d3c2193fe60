"""Reading a Dash component tree in tests: a callback's JSON answer, or the components a page
builds."""

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


def find_component(component: object, component_id: object) -> object:
    """The component with this id inside a built component (depth first), or None."""
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str):
            found = find_component(child, component_id)
            if found is not None:
                return found
    return None


def component_text(component: object) -> str:
    """The text a built component shows (its children's text, joined), like :func:`text`."""
    if isinstance(component, list | tuple):
        return "".join(component_text(c) for c in component)
    if component is None or isinstance(component, str | int | float):
        return "" if component is None else str(component)
    return component_text(getattr(component, "children", None))
