"""Unit tests of the book's Sphinx extension (book/_ext/nadbook_sphinx.py); the full build is tested
in test_book_build.py."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ext():
    spec = importlib.util.spec_from_file_location("nadbook_sphinx", ROOT / "book/_ext/nadbook_sphinx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plotly_output_renders_offline(ext):
    go = pytest.importorskip("plotly.graph_objects")
    fig = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])).to_plotly_json()
    data = SimpleNamespace(mime_type=ext.PLOTLY_MIME, content=fig)
    (node,) = ext.PlotlyMimeRenderer.handle_mime(None, data, inline=False)
    html = node.astext()
    assert "plotly-graph-div" in html and "Plotly.newPlot" in html
    assert "<script src=" not in html and "cdn" not in html.lower(), "the figure must not load a CDN"
    # other mime types and inline outputs are left to MyST-NB
    assert ext.PlotlyMimeRenderer.handle_mime(None, SimpleNamespace(mime_type="text/html", content=""),
                                              inline=False) is None
    assert ext.PlotlyMimeRenderer.handle_mime(None, data, inline=True) is None


def test_figure_post_script_is_run(ext):
    go = pytest.importorskip("plotly.graph_objects")
    script = "window.__nadbook_test = document.getElementById('{plot_id}');"
    fig = go.Figure(go.Heatmap(z=[[1, 2]]), layout={"meta": {ext.POST_SCRIPT_KEY: script}})
    html = ext.plotly_json_to_html(fig.to_plotly_json())
    # the script runs once Plotly.newPlot has resolved, with the id of this figure's div filled in
    after_plot = html.split(".then(function(){", 1)[-1]
    div_id = re.search(r'<div id="([^"]+)" class="plotly-graph-div"', html).group(1)
    assert f"window.__nadbook_test = document.getElementById('{div_id}');" in after_plot
    assert "__nadbook_test" not in ext.plotly_json_to_html(go.Figure(go.Heatmap(z=[[1]])).to_plotly_json())


def test_plugin_is_registered_once(ext):
    from myst_nb.core import render

    ext._register_plotly_plugin()
    ext._register_plotly_plugin()
    plugins = render.load_mime_renders()
    assert sum(p is ext.PlotlyMimeRenderer for p in plugins) == 1
    order = render.get_mime_priority("html", [])
    assert order.index(ext.PLOTLY_MIME) < order.index("text/html") < order.index("text/plain")
    assert ext.PLOTLY_MIME not in render.get_mime_priority("latex", [])


def test_duplicate_inline_scripts_are_dropped(ext):
    def js(filename, body):
        return SimpleNamespace(filename=filename, attributes={"body": body} if body else {})

    scripts = [js("_static/a.js", None), js(None, "const X = 1"), js("", "const X = 1"),
               js("_static/a.js", None), js(None, "const Y = 2")]
    context = {"script_files": scripts}
    ext._dedupe_inline_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] == [scripts[0], scripts[1], scripts[4]]
