"""Sphinx extension of the NAD book (loaded through ``sphinx: local_extensions`` in ``_config.yml``).

It does three things that Jupyter Book 1.x does not do on its own:

1. **Plotly figures that work offline.**  In a Jupyter kernel ``fig.show()`` emits the
   ``application/vnd.plotly.v1+json`` mime type, which JupyterLab renders natively but MyST-NB does
   not know.  This extension renders that output into an HTML ``<div>`` plus a call to
   ``Plotly.newPlot`` and adds a local copy of plotly.js (``_static/plotly.min.js``, copied from the
   installed ``plotly`` package, no CDN) to the pages that contain a figure.  Chapters therefore just
   call ``fig.show()``; the static HTML stays interactive (hover, menus) without any network access.
2. **One execution cache per run profile.**  ``execute_notebooks: cache`` keys cached outputs on the
   code of the notebook only, so a book built with ``NADLIB_PROFILE=smoke`` would otherwise be reused
   by a later ``default`` build.  The jupyter-cache folder is ``<build>/.jupyter_cache-<profile>`` and
   the profile is a Sphinx config value, so switching profiles re-reads every page.
3. **No duplicated inline scripts** (a Sphinx 7.4 + sphinx-thebe bug that throws a JavaScript error
   on every page); see ``_dedupe_inline_scripts``.
"""

from __future__ import annotations

import os
from pathlib import Path

from docutils import nodes

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "plotly.min.js"
_HTML_BUILDERS = ("html", "dirhtml", "singlehtml")


#: Key of ``layout.meta`` (a dict) holding JavaScript to run after the figure is drawn, e.g. hover
#: handlers (``{plot_id}`` is replaced by the id of the figure's ``div``); see ``nadlib.book.interactive.HOVER_JS``.
POST_SCRIPT_KEY = "nadbook_post_script"


def plotly_json_to_html(fig: dict) -> str:
    """HTML for one Plotly figure dict that relies on a global ``Plotly`` (no CDN, no MathJax).

    A figure may carry its own post-script in ``layout.meta[POST_SCRIPT_KEY]`` (Plotly keeps ``meta``
    as data; the JSON mime type has no other place for code); it runs after ``Plotly.newPlot``.
    """
    import plotly.io as pio

    meta = (fig.get("layout") or {}).get("meta")
    post_script = meta.get(POST_SCRIPT_KEY) if isinstance(meta, dict) else None
    return pio.to_html(fig, include_plotlyjs=False, include_mathjax=False, full_html=False,
                       validate=False, default_width="100%", default_height=525,
                       post_script=post_script if isinstance(post_script, str) else None)


class PlotlyMimeRenderer:
    """MyST-NB mime render plugin for ``application/vnd.plotly.v1+json`` (HTML builders only)."""

    mime_priority_overrides = [(name, PLOTLY_MIME, 5) for name in _HTML_BUILDERS]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != PLOTLY_MIME or inline:
            return None
        try:
            html = plotly_json_to_html(data.content)
        except ImportError:  # plotly missing: let MyST-NB fall back to the next mime type
            return None
        return [nodes.raw(text=html, format="html", classes=["output", "text_html"])]


def _register_plotly_plugin() -> None:
    # MyST-NB discovers mime plugins through entry points (``load_mime_renders``); a book-local plugin
    # has none, so wrap the discovery function once to append ours.
    from myst_nb.core import render

    if getattr(render.load_mime_renders, "_nadbook", False):
        return
    original = render.load_mime_renders

    def load_mime_renders():
        plugins = list(original())
        if PlotlyMimeRenderer not in plugins:
            plugins.append(PlotlyMimeRenderer)
        return plugins

    load_mime_renders._nadbook = True
    render.load_mime_renders = load_mime_renders


def _profile() -> str:
    return os.environ.get("NADLIB_PROFILE", "default").strip() or "default"


def _config_inited(app, config) -> None:
    profile = _profile()
    config.nadbook_profile = profile
    if not config.nb_execution_cache_path:
        config.nb_execution_cache_path = str(Path(app.outdir).parent / f".jupyter_cache-{profile}")


def _add_plotly_js(app, pagename, templatename, context, doctree) -> None:
    if app.builder.format == "html" and "plotly-graph-div" in context.get("body", ""):
        app.add_js_file(PLOTLY_JS)


def _dedupe_inline_scripts(app, pagename, templatename, context, doctree) -> None:
    # Sphinx 7.4 lists an inline script that an extension adds after the builder started twice, once
    # with filename None and once with "" (seen with sphinx-thebe and sphinx-togglebutton); the second
    # ``const THEBE_JS_URL = ...`` is a JavaScript SyntaxError on every page.  Keep the first of each.
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", str(js)) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def _write_plotly_js(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        return
    target = Path(app.outdir) / "_static" / PLOTLY_JS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(get_plotlyjs(), encoding="utf-8")


def setup(app):
    app.add_config_value("nadbook_profile", "default", "env")
    _register_plotly_plugin()
    # priority < 500 so that this runs before MyST-NB reads nb_execution_cache_path (builder-inited)
    app.connect("config-inited", _config_inited, priority=400)
    app.connect("html-page-context", _add_plotly_js)
    app.connect("html-page-context", _dedupe_inline_scripts, priority=900)  # after everyone else
    app.connect("build-finished", _write_plotly_js)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
