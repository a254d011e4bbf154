"""The ``cnn serve`` web app: thin Flask routes over :mod:`cnn_cli.serve.analysis` and :mod:`cnn_cli.serve.records`.

Pages are templates shipped in the package (``templates/``, one shared head and nav),
scripts and styles static files (``static/``); the pages fetch JSON
from ``/api/...``. Only GET requests read, and one POST (``/api/analyze``)
computes without writing: no endpoint changes or deletes a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import RunPaths
from cnn_cli.serve import records
from cnn_cli.serve.analysis import ModelCache, analyze_upload

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATE_DIR = Path(__file__).parent / "templates"  # the pages: page.html (head, nav, scripts) and one child per page
MAX_UPLOAD_BYTES = 4 << 20  # a digit photo needs far less; bigger bodies get 413
CUSTOM_MODEL = "checkpoint"  # the model id of --checkpoint
SECURITY_HEADERS = {
    # Everything the pages need is served from here; nothing is fetched from elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(runs_root: str | Path, checkpoint: str | Path | None = None) -> Flask:
    """The web app for the runs in ``runs_root``; ``checkpoint`` adds a draw-pad model outside any run (and is the default)."""
    site = _Site(Path(runs_root), Path(checkpoint) if checkpoint is not None else None)
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static", template_folder=str(TEMPLATE_DIR))
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES
    app.url_map.merge_slashes = False  # "//etc" is not quietly redirected to "/etc"; it is simply not found
    _add_headers_and_errors(app)
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
    evaluations: records.EvaluationCache = field(default_factory=records.EvaluationCache)

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
            model_id = records.newest_completed_run(self.root)
            if model_id is None:
                abort(404, description="no completed run with checkpoints/best.npz; train one (cnn train -c mnist) or pass --checkpoint")
        if model_id == CUSTOM_MODEL and self.custom is not None:
            return self.custom
        paths = self.run_or_404(str(model_id))
        path = records.run_file(paths, paths.best)
        if path is None:
            abort(404, description=f"run {model_id!r} has no checkpoints/best.npz")
        return path


def _add_headers_and_errors(app: Flask) -> None:
    """Security headers on every response; errors answered as JSON (``{"error": ..., "status": ...}``)."""

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return jsonify(error=exc.description, status=exc.code), exc.code

    @app.errorhandler(CnnError)
    def _bad_input(exc: CnnError):
        return jsonify(error=str(exc), status=400), 400


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


def _add_model_api(app: Flask, site: _Site) -> None:
    """The draw pad's API: which models there are, and one drawing analysed by one of them."""

    @app.get("/api/models")
    def api_models():
        choices: list[dict[str, Any]] = []
        if site.custom is not None:
            choices.append({"id": CUSTOM_MODEL, "label": f"{site.custom.name} (--checkpoint)"})
        for run in records.list_runs(site.root):
            if run["has_checkpoint"]:
                accuracy = run["test_acc"] if run["test_acc"] is not None else run["best_val_acc"]
                label = f"{run['name']} ({run['status']}" + (f", {accuracy:.2%}" if accuracy is not None else "") + ")"
                choices.append({"id": run["name"], "label": label})
        default = CUSTOM_MODEL if site.custom is not None else records.newest_completed_run(site.root)
        return jsonify(default=default, models=choices)

    @app.post("/api/analyze")
    def api_analyze():
        chosen = request.args.get("class")
        class_index = None
        if chosen not in (None, ""):
            if not chosen.isdigit():
                abort(400, description=f"class must be a class index (0, 1, ...), got {chosen!r}")
            class_index = int(chosen)
        path = site.model_path(request.args.get("model"))
        upload = request.files.get("image")
        data = upload.read(MAX_UPLOAD_BYTES + 1) if upload is not None else request.get_data(cache=False)
        if len(data) > MAX_UPLOAD_BYTES:
            abort(413)
        if not data:
            abort(400, description="no image in the request body (send PNG or JPEG bytes)")
        try:
            loaded = site.models.get(path)
        except OSError as exc:
            abort(404, description=f"{path.name}: cannot read the checkpoint ({exc.strerror})")
        return jsonify(analyze_upload(data, loaded, class_index))


def _add_run_api(app: Flask, site: _Site) -> None:
    """The runs pages' API: every run, one run's records (polled), and its best checkpoint's evaluation."""

    @app.get("/api/runs")
    def api_runs():
        return jsonify(runs=records.list_runs(site.root))

    @app.get("/api/runs/<name>")
    def api_run(name: str):
        paths = site.run_or_404(name)
        stamp = records.file_stamp(paths)
        if request.args.get("since") == stamp:  # the page polls; nothing new is a small answer
            return jsonify(stamp=stamp, unchanged=True)
        return jsonify(records.run_detail(paths, name))

    @app.get("/api/runs/<name>/evaluation")
    def api_evaluation(name: str):
        paths = site.run_or_404(name)
        checkpoint = records.run_file(paths, paths.best)
        if checkpoint is None:
            abort(404, description=f"run {name!r} has no checkpoints/best.npz yet")
        return jsonify(site.evaluations.get(checkpoint, records.evaluate_run))
