"""The README's inspector screenshots: `memlane serve` on a throwaway home with a few memories,
three pages shot by Debian's chromium through playwright into docs/images/.

    python bench/ui_screenshots.py
"""
import os, subprocess, sys, time, tempfile, socket, httpx
from pathlib import Path
home = Path(tempfile.mkdtemp())
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
env = {**os.environ, "MEMLANE_HOME": str(home)}
proc = subprocess.Popen([sys.executable, "-m", "memlane.cli", "serve", "--port", str(port), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL)
url = f"http://127.0.0.1:{port}"
for _ in range(100):
    try:
        if httpx.get(url + "/readyz").status_code == 200: break
    except httpx.HTTPError: pass
    time.sleep(0.1)
api = httpx.Client(base_url=url)
def add(text, user, ts, **kw):
    return api.post("/v1/memories", json={"messages": [{"role": "user", "content": text, **kw}], "user_id": user, "infer": False, "timestamp": ts}).json()["results"][0]["id"]
mid = add("Is allergic to cheese", "alice", "2026-11-20T18:02:00Z")
add("Loves Indian food", "alice", "2026-11-20T18:02:00Z")
add("Lives in San Francisco", "alice", "2026-11-21T09:15:00Z")
add("Prefers window seats on flights", "alice", "2026-11-24T12:40:00Z")
add("Plays the cello in a community orchestra", "bob", "2026-11-22T20:05:00Z")
api.put(f"/v1/memories/{mid}", json={"text": "Is severely allergic to cheese"})
from playwright.sync_api import sync_playwright
out = Path(__file__).resolve().parents[1] / "docs" / "images"
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    page = b.new_page(viewport={"width": 1100, "height": 620})
    for name, path in (("ui-overview", "/ui"), ("ui-memories", "/ui/memories?user_id=alice&q=dinner+ideas"), ("ui-memory", f"/ui/memories/{mid}")):
        page.goto(url + path); page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    b.close()
proc.terminate(); proc.wait(30)
