"""The report page renders in a real browser (headless Chromium), not only as valid links."""

import shutil
import subprocess

import pytest

from neuroprune.report import build_report

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (Debian: apt-get install chromium); "
                                            "the plain-HTML checks of test_report.py still run")
def test_the_page_renders_with_its_figures_in_headless_chromium(digits_run, tmp_path):
    files = build_report([digits_run], tmp_path / "report")
    shot = tmp_path / "screenshot.png"
    # --no-sandbox: Chromium refuses to start as root otherwise (containers, CI)
    subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1280,2400",
         f"--screenshot={shot}", files.html.resolve().as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    # a blank or unstyled page compresses to a few kilobytes; one with three figures to far more
    assert shot.stat().st_size > 40_000
