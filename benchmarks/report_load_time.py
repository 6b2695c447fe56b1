"""Size and load time of `bench report` pages in Debian's chromium (headless, playwright): the median of
five loads of each page's DOMContentLoaded and load events.

    bench report --results RESULTS --out /tmp/report && python benchmarks/report_load_time.py /tmp/report/index.html
"""
import os
import sys, statistics
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
    for path in sys.argv[1:]:
        times = []
        for _ in range(5):
            page = b.new_page()
            page.goto("file://" + path)
            t = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0]; return [n.domContentLoadedEventEnd, n.loadEventEnd]; }")
            times.append(t)
            page.close()
        print(path, f"{os.path.getsize(path) / 1000:.0f} kB,", "median DOMContentLoaded %.0f ms, load %.0f ms" % (statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)))
    b.close()
