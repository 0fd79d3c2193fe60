"""Only the login and favicon paths themselves skip the login (a path that merely starts with
them redirects to it), and the LaTeX preview says a formula nested too deeply does not render
instead of failing the callback."""

from __future__ import annotations

import pytest
from flask import Flask

from core.latex import validate_latex
from dashboards import latex_preview


@pytest.mark.parametrize("path", ["/dashboard/login/experiments", "/dashboard/login-x",
                                  "/dashboard/loginx", "/dashboard/_favicon.icox",
                                  "/dashboard/_favicon.ico/x"])
def test_a_path_that_only_starts_like_a_public_one_needs_the_login(dash_app: Flask,
                                                                   path: str) -> None:
    answer = dash_app.test_client().get(path)
    assert answer.status_code == 302, path
    assert answer.headers["Location"].startswith("/dashboard/login?next=")


def test_the_public_paths_stay_public(dash_app: Flask) -> None:
    client = dash_app.test_client()
    assert client.get("/dashboard/login").status_code == 200
    assert client.get("/dashboard/_favicon.ico").status_code == 200
    script = client.get("/dashboard/_dash-component-suites/dash/deps/polyfill@7.v4m0.min.js")
    assert script.status_code != 302  # served or 404, never the login


@pytest.mark.parametrize("formula", ["{" * 40 + "x" + "}" * 40, "x^{" * 60 + "y" + "}" * 60,
                                     "\\sqrt{" * 60 + "x" + "}" * 60])
def test_a_deeply_nested_formula_is_reported_not_raised(formula: str) -> None:
    assert not validate_latex(formula)  # abvoc's validator accepts it
    preview = latex_preview.render(formula)
    assert preview.src is None
    assert preview.problem is not None
    assert preview.problem.startswith("The formula does not render")


def test_a_formula_mathtext_refuses_is_still_reported() -> None:
    assert latex_preview.render("x^{2}").src is not None
    broken = latex_preview.render("\\frac{1}")
    assert broken.src is None and broken.problem
