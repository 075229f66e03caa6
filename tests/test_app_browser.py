"""The web demo in a real browser: headless Chromium (Debian's package) uploads an image, types a prompt,
waits for the edit and checks the returned image; a prompt the model cannot read shows its one-line error in
the page. Skips, saying why, where gradio, playwright or Chromium is missing."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# looked up, not imported: importing gradio alone takes seconds, and only the demo's subprocess needs it
if importlib.util.find_spec("gradio") is None:
    pytest.skip("the demo needs gradio (pip install -e '.[demo]')", allow_module_level=True)
if importlib.util.find_spec("playwright") is None:
    pytest.skip("the browser test needs playwright (pip)", allow_module_level=True)
if CHROMIUM is None:
    pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow  # starts the demo (loads the model) and a browser

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "face.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tedigan", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the demo exited: {proc.stdout.read()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the demo did not start within 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _image_at(page, selector: str, timeout_ms: int = 60_000) -> Image.Image:
    img = page.locator(f"{selector} img").first
    img.wait_for(state="visible", timeout=timeout_ms)
    src = img.get_attribute("src")
    if src.startswith("data:"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        data = page.request.get(src if src.startswith("http") else page.url.rstrip("/") + src).body()
    return Image.open(io.BytesIO(data)).convert("RGB")


def test_the_demo_edits_an_uploaded_image_in_a_browser(server, tmp_path):
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server, wait_until="domcontentloaded")
        page.locator("#edit-input input[type=file]").set_input_files(str(EXAMPLE))
        page.locator("#edit-prompt textarea").fill("blond hair")
        page.locator("#edit-button").click()
        edited = _image_at(page, "#edit-output")
        recon = _image_at(page, "#edit-recon")
        page.locator("#edit-info").get_by_text("W+ layers").wait_for(timeout=30_000)
        shot = Path(os.environ.get("TEDIGAN_SCREENSHOT_DIR", tmp_path)) / "demo_edit.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        a, b = np.asarray(edited).astype(float), np.asarray(recon).astype(float)
        assert edited.size == recon.size and edited.size[0] >= 128
        assert a.std() > 10 and np.abs(a - b).mean() > 1  # a face, and the edit changed it
        # a prompt the model cannot read: its one-line error in the page, no stack trace
        page.locator("#edit-prompt textarea").fill("make it pop")
        page.locator("#edit-button").click()
        page.get_by_text("does not understand").first.wait_for(timeout=30_000)
        assert "Traceback" not in page.content()
        browser.close()
