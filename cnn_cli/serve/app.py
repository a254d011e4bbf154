"""The ``cnn serve`` web app: thin Flask routes over :mod:`cnn_cli.serve.analysis` and :mod:`cnn_cli.serve.records`.

Pages are templates shipped in the package (``templates/``, one shared head and nav),
scripts and styles static files (``static/``); the pages fetch JSON
from ``/api/...``. Only GET requests read, and two POSTs (``/api/analyze``, ``/api/pixel``)
compute without writing: no endpoint changes or deletes a file.
What every request must show and every answer carries (Host, Origin, security
headers, error pages) is :mod:`cnn_cli.serve.security`; how an upload is taken in
(size, pixels, concurrent decodes) is :mod:`cnn_cli.serve.uploads`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, render_template, request, send_file

from cnn_cli.runs.folders import RunPaths
from cnn_cli.serve import records, security
from cnn_cli.serve.analysis import ModelCache, Spot, analyze_upload, pixel_upload
from cnn_cli.serve.evaluation import EvaluationCache, evaluate_run
from cnn_cli.serve.index import RunsIndex, compare
from cnn_cli.serve.uploads import MAX_UPLOAD_BYTES, DecodeSlots, check_pixels, read_upload, too_large_message

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATE_DIR = Path(__file__).parent / "templates"  # the pages: page.html (head, nav, scripts) and one child per page
CUSTOM_MODEL = "checkpoint"  # the model id of --checkpoint
CLASS_INDEX = re.compile(r"[0-9]{1,6}")  # ASCII digits only: str.isdigit() also takes '²' and '٣'
EXPENSIVE_ENDPOINTS = ("api_analyze", "api_pixel", "api_evaluation")  # besides every POST: refused from another site's page
__all__ = ["MAX_UPLOAD_BYTES", "create_app"]


def create_app(
    runs_root: str | Path,
    checkpoint: str | Path | None = None,
    *,
    bound_host: str = "127.0.0.1",
    allow_hosts: Sequence[str] = (),
) -> Flask:
    """The web app for the runs in ``runs_root``; ``checkpoint`` adds a draw-pad model outside any run (and is the default).

    ``bound_host`` (the address the server listens on) and ``allow_hosts`` are the ``Host`` names answered
    besides localhost (:class:`cnn_cli.serve.security.HostGuard`).
    """
    site = _Site(Path(runs_root), Path(checkpoint) if checkpoint is not None else None)
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static", template_folder=str(TEMPLATE_DIR))
    # One byte above the limit: a chunked body of exactly the limit still fits (uploads.read_upload).
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES + 1
    app.url_map.merge_slashes = False  # "//etc" is not quietly redirected to "/etc"; it is simply not found
    security.install(app, security.HostGuard(bound_host, allow_hosts), EXPENSIVE_ENDPOINTS)

    @app.errorhandler(413)
    def _too_large(exc):
        return security.error_response(413, too_large_message(request.content_length))

    _add_pages(app, site)
    _add_model_api(app, site)
    _add_run_api(app, site)
    return app


@dataclass
class _Site:
    """What the routes read: the runs folder, the ``--checkpoint`` model, and the caches of loaded models and evaluations."""

    root: Path
    custom: Path | None
    models: ModelCache = field(default_factory=ModelCache)
    evaluations: EvaluationCache = field(default_factory=EvaluationCache)
    decodes: DecodeSlots = field(default_factory=DecodeSlots)
    index: RunsIndex = field(init=False)

    def __post_init__(self) -> None:
        self.index = RunsIndex(self.root)

    def run_or_404(self, name: str) -> RunPaths:
        paths = records.run_paths(self.root, name)
        if paths is None:
            abort(404, description=f"no run named {name!r} in the runs folder")
        return paths

    def model_path(self, model_id: str | None) -> Path:
        """The checkpoint a draw-pad request means: ``--checkpoint``, else the newest completed run's best.npz."""
        if model_id in (None, ""):
            if self.custom is not None:
                return self.custom
            model_id = self.index.newest_completed()
            if model_id is None:
                abort(404, description="no completed run with checkpoints/best.npz; train one (cnn train -c mnist) or pass --checkpoint")
        if model_id == CUSTOM_MODEL and self.custom is not None:
            return self.custom
        paths = self.run_or_404(str(model_id))
        path = records.run_file(paths, paths.best)
        if path is None:
            abort(404, description=f"run {model_id!r} has no checkpoints/best.npz")
        return path


def _add_pages(app: Flask, site: _Site) -> None:
    """The HTML pages: the draw pad, the list of runs, and one run."""

    @app.get("/")
    def draw_page():
        return render_template("draw.html")

    @app.get("/runs")
    def runs_page():
        return render_template("runs.html")

    @app.get("/runs/<name>")
    def run_page(name: str):
        site.run_or_404(name)
        return render_template("run.html")


def _class_index(chosen: str | None) -> int | None:
    if chosen in (None, ""):
        return None
    if not CLASS_INDEX.fullmatch(chosen):
        abort(400, description=f"class must be a class index (0, 1, ...), got {chosen!r}")
    return int(chosen)


def _index(name: str) -> int:
    """A non-negative integer query parameter (ASCII digits only), else 400."""
    chosen = request.args.get(name, "")
    if not CLASS_INDEX.fullmatch(chosen):
        abort(400, description=f"{name} must be a non-negative integer (0, 1, ...), got {chosen!r}")
    return int(chosen)


def _upload_and_model(site: _Site):
    """The uploaded image (size and pixels checked before anything is decoded) and the model the request names, loaded
    (404 when its checkpoint cannot be read)."""
    path = site.model_path(request.args.get("model"))
    data = read_upload(request)
    check_pixels(data)
    try:
        return data, site.models.get(path)
    except OSError as exc:
        abort(404, description=f"{path.name}: cannot read the checkpoint ({exc.strerror})")


def _add_model_api(app: Flask, site: _Site) -> None:
    """The draw pad's API: which models there are, one drawing analysed by one of them, and one pixel's arithmetic."""

    @app.get("/api/models")
    def api_models():
        choices: list[dict[str, Any]] = []
        if site.custom is not None:
            choices.append({"id": CUSTOM_MODEL, "label": f"{site.custom.name} (--checkpoint)"})
        runs = site.index.runs()
        for run in runs:
            if run["has_checkpoint"]:
                accuracy = run["test_acc"] if run["test_acc"] is not None else run["best_val_acc"]
                label = f"{run['name']} ({run['status']}" + (f", {accuracy:.2%}" if accuracy is not None else "") + ")"
                choices.append({"id": run["name"], "label": label})
        default = CUSTOM_MODEL if site.custom is not None else site.index.newest_completed()
        return jsonify(default=default, models=choices)

    @app.post("/api/analyze")
    def api_analyze():
        class_index = _class_index(request.args.get("class"))
        data, loaded = _upload_and_model(site)
        with site.decodes.slot():
            return jsonify(analyze_upload(data, loaded, class_index, request.args.get("target") or "score"))

    @app.post("/api/pixel")
    def api_pixel():
        """?layer=conv1&channel=C&y=I&x=J (and model, class, target as for /api/analyze), the image as the body."""
        spot = Spot(request.args.get("layer", ""), _index("channel"), _index("y"), _index("x"))
        class_index = _class_index(request.args.get("class"))
        data, loaded = _upload_and_model(site)
        with site.decodes.slot():
            return jsonify(pixel_upload(data, loaded, spot, class_index, request.args.get("target") or "score"))


def _add_run_api(app: Flask, site: _Site) -> None:
    """The runs pages' API: every run, one run's records (polled), its CSV files, its evaluation, and runs compared."""

    @app.get("/api/runs")
    def api_runs():
        runs, stamp = site.index.listing()
        if request.args.get("since") == stamp:  # the list page polls; nothing new is a small answer
            return jsonify(stamp=stamp, unchanged=True)
        return jsonify(runs=runs, stamp=stamp)

    @app.get("/api/runs/<name>")
    def api_run(name: str):
        paths = site.run_or_404(name)
        stamp = records.file_stamp(paths)
        if request.args.get("since") == stamp:  # the page polls; nothing new is a small answer
            return jsonify(stamp=stamp, unchanged=True)
        return jsonify(records.run_detail(paths, name))

    @app.get("/api/runs/<name>/<any(metrics, steps):which>.csv")
    def api_csv(name: str, which: str):
        text = records.csv_text(site.run_or_404(name), which)
        if text is None:
            abort(404, description=f"run {name!r} has no {which}.csv")
        return send_file(io.BytesIO(text.encode("utf-8")), "text/csv", as_attachment=True, download_name=f"{name}-{which}.csv")

    @app.get("/api/runs/<name>/evaluation")
    def api_evaluation(name: str):
        paths = site.run_or_404(name)
        checkpoint = records.run_file(paths, paths.best)
        if checkpoint is None:
            abort(404, description=f"run {name!r} has no checkpoints/best.npz yet")
        return jsonify(site.evaluations.get(checkpoint, evaluate_run))

    @app.get("/api/compare")
    def api_compare():
        names = [name for name in request.args.getlist("run") if name]
        if not names:
            abort(400, description="name the runs to compare: /api/compare?run=A&run=B")
        return jsonify(compare([(name, site.run_or_404(name)) for name in dict.fromkeys(names)]))
