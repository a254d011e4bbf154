"""The ``cnn serve`` app's checks, through Flask's test client: Host, Origin, class, pixels, uploads, error pages, names."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from tests.serve.conftest import NEEDS_SERVE_EXTRA, TRAINED_RUN, copy_run

pytest.importorskip("flask", reason=NEEDS_SERVE_EXTRA)
pytest.importorskip("threadpoolctl", reason=NEEDS_SERVE_EXTRA)

from cnn_cli.serve.app import create_app  # noqa: E402
from cnn_cli.serve.security import HostGuard, host_name  # noqa: E402
from cnn_cli.serve.uploads import MAX_PIXELS  # noqa: E402
from tests.serve.test_api import seven_png  # noqa: E402
from tests.serve.test_hostile import bomb_png  # noqa: E402

# ---------------------------------------------------------------- Host and Origin


@pytest.mark.parametrize(
    ("bound", "allowed", "host", "answered"),
    [
        ("127.0.0.1", (), "127.0.0.1:8000", True),
        ("127.0.0.1", (), "localhost:8000", True),
        ("127.0.0.1", (), "LOCALHOST", True),
        ("127.0.0.1", (), "[::1]:8000", True),
        ("127.0.0.1", (), "app.localhost:8000", True),
        ("127.0.0.1", (), "evil.example", False),
        ("127.0.0.1", (), "evil.example:8000", False),
        ("127.0.0.1", (), "127.0.0.1.evil.example", False),
        ("127.0.0.1", (), "192.168.1.20:8000", False),
        ("192.168.1.20", (), "192.168.1.20:8000", True),
        ("0.0.0.0", (), "192.168.1.20:8000", True),  # bound to every interface: any address, never a name
        ("0.0.0.0", (), "mybox.local:8000", False),
        ("0.0.0.0", ("mybox.local",), "mybox.local:8000", True),
        ("0.0.0.0", ("MyBox.Local",), "mybox.local.:8000", True),
    ],
)
def test_host_guard(bound: str, allowed: tuple[str, ...], host: str, answered: bool) -> None:
    assert HostGuard(bound, allowed).allows(host) is answered


def test_host_name_parsing() -> None:
    hosts = ("[::1]:80", "Example.ORG.:8000", "localhost", "10.0.0.1:1")
    assert [host_name(h) for h in hosts] == ["::1", "example.org", "localhost", "10.0.0.1"]


def test_a_foreign_host_is_refused_everywhere(client) -> None:
    for path in ("/api/runs", f"/api/runs/{TRAINED_RUN}", "/runs", "/", "/static/common.js"):
        response = client.get(path, headers={"Host": "evil.example"})
        assert response.status_code == 403, path
        assert TRAINED_RUN.encode() not in response.data
    assert client.get("/api/runs", headers={"Host": "evil.example"}).json["error"].startswith("refused")


def test_allow_host_admits_a_lan_name(runs_root: Path) -> None:
    client = create_app(runs_root, bound_host="0.0.0.0", allow_hosts=["mybox.local"]).test_client()
    assert client.get("/api/runs", headers={"Host": "mybox.local:8000"}).status_code == 200
    assert client.get("/api/runs", headers={"Host": "other.local:8000"}).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Origin": "http://localhost:9999"},  # another port is another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_post_from_another_origin_is_refused(client, headers: dict[str, str]) -> None:
    response = client.post("/api/analyze", data=seven_png(), headers=headers)
    assert response.status_code == 403 and response.json["error"].startswith("refused")
    evaluation = client.get(f"/api/runs/{TRAINED_RUN}/evaluation", headers=headers)
    assert evaluation.status_code == 403  # expensive: checked although it is a GET


def test_same_origin_and_plain_clients_are_served(client) -> None:
    same = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/analyze", data=seven_png(), headers=same).status_code == 200
    assert client.post("/api/analyze", data=seven_png()).status_code == 200  # curl: no Origin at all
    assert client.get("/api/runs", headers={"Origin": "http://evil.example"}).status_code == 200  # a read it cannot see


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize("chosen", ["²", "٣", "３", "1 ", "+1", "0x1", "1234567"])
def test_class_takes_ascii_digits_only(client, chosen: str) -> None:
    response = client.post("/api/analyze", query_string={"class": chosen}, data=seven_png())
    assert response.status_code == 400, chosen
    assert "class" in response.json["error"]


def test_a_large_declared_size_is_refused_from_the_header(client) -> None:
    response = client.post("/api/analyze", data=bomb_png(9000, 9000))
    assert response.status_code == 400
    error = response.json["error"]
    assert "too many pixels" in error and "9000×9000" in error and f"{MAX_PIXELS / 1e6:g}" in error


def test_an_image_just_under_the_pixel_cap_is_analysed(client) -> None:
    side = int(MAX_PIXELS**0.5) - 1
    image = Image.open(io.BytesIO(seven_png())).resize((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    response = client.post("/api/analyze", data=buffer.getvalue())
    assert response.status_code == 200 and response.json["prediction"] == "7"


def test_the_413_text_states_the_limit(client) -> None:
    response = client.post("/api/analyze", data=b"\0" * (5 << 20))
    assert response.status_code == 413
    assert "4 MiB" in response.json["error"] and "5,242,880" in response.json["error"]


def test_a_raw_body_with_the_form_content_type_is_the_image(client) -> None:
    response = client.post("/api/analyze", data=seven_png(), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json["prediction"] == "7"


# ---------------------------------------------------------------- answers


def test_pages_answer_404_as_html_and_the_api_as_json(client) -> None:
    for path in ("/no-such-page", "/runs/no-such-run", "/runs/%2e%2e"):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html", path
        assert b"<!doctype html>" in response.data and b"404" in response.data
    response = client.get("/api/runs/no-such-run")
    assert response.status_code == 404 and response.json["status"] == 404


def test_every_answer_forbids_framing(client) -> None:
    for path in ("/", "/runs", "/api/runs", "/no-such-page", "/static/style.css"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"


def test_templates_have_no_inline_style_or_script() -> None:
    from cnn_cli.serve.app import TEMPLATE_DIR

    for page in TEMPLATE_DIR.glob("*.html"):
        text = page.read_text()
        assert "style=" not in text and "<style" not in text, page.name
        assert "<script>" not in text and " on" + "click=" not in text, page.name


# ---------------------------------------------------------------- run names


@pytest.mark.parametrize("name", ["my run", "über-lauf", "実験 1", "a+b=c (2)", "%41"])
def test_run_names_with_spaces_and_non_ascii_are_listed_and_served(client, runs_root: Path, name: str) -> None:
    copy_run(runs_root, name)
    assert name in {run["name"] for run in client.get("/api/runs").json["runs"]}
    encoded = quote(name, safe="")
    assert client.get(f"/runs/{encoded}").status_code == 200
    detail = client.get(f"/api/runs/{encoded}")
    assert detail.status_code == 200 and detail.json["name"] == name
    assert client.get(f"/api/runs/{encoded}/metrics.csv").status_code == 200


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "a\\b", "tab\there", "nul\0"])
def test_names_that_are_not_one_plain_folder_name_are_refused(client, runs_root: Path, name: str) -> None:
    from cnn_cli.serve.records import plain_name, run_paths

    assert not plain_name(name)
    assert run_paths(runs_root, name) is None


def test_a_symlinked_run_with_a_space_pointing_out_is_refused(client, runs_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(runs_root / TRAINED_RUN, outside)
    (runs_root / "looks fine").symlink_to(outside, target_is_directory=True)
    assert client.get("/api/runs/looks%20fine").status_code == 404
    assert "looks fine" not in {run["name"] for run in client.get("/api/runs").json["runs"]}
