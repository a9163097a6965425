"""``pscs camera``, run as an administrator would."""

from __future__ import annotations

from tests.test_cli import data_dir, pscs  # noqa: F401 - fixture


def test_P0_camera_add_list_disable(data_dir):  # noqa: F811
    assert pscs(data_dir, "init").returncode == 0
    args = [
        "camera",
        "add",
        "elm",
        "--main-url",
        "rtsp://u:topsecret@192.0.2.30/s1",
        "--address",
        "9 Elm St",
        "--lat",
        "41.5",
        "--lon",
        "-72.1",
    ]
    refused = pscs(data_dir, *args)
    assert refused.returncode == 2 and "public" in refused.stderr.lower()
    added = pscs(data_dir, *args, "--attest-public-area")
    assert added.returncode == 0, added.stderr
    assert "topsecret" not in added.stdout
    listing = pscs(data_dir, "camera", "list")
    assert "elm" in listing.stdout and "topsecret" not in listing.stdout
    assert pscs(data_dir, "camera", "disable", "elm", "--reason", "pole replaced").returncode == 0
    missing = pscs(data_dir, "camera", "disable", "nowhere")
    assert missing.returncode == 2 and "nowhere" in missing.stderr
