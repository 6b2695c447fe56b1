"""``bench report``: the data behind the plots, determinism, and the page in a real headless Chromium
(Debian's ``chromium``, driven by playwright): no console errors, every plot has marks, the tables
hold one row per certificate, a drill-down opens, a screenshot is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import report
from bench.cli import main

pytestmark = pytest.mark.slow  # pages of real runs, and a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_frontier_is_the_non_dominated_rows():
    bits = np.array([100, 200, 50, 400, 200, 50])
    bounds = np.array([0.5, 0.4, 0.7, 0.3, 0.45, 0.7])
    front = report.pareto_frontier(bits, bounds)
    assert list(front) == [2, 0, 1, 3]  # by size; (200, .45) and the duplicate (50, .7) are dominated
    for i in range(len(bits)):  # by the definition, with ties going to the first of equal points
        dominated = any(bits[j] <= bits[i] and bounds[j] <= bounds[i]
                        and ((bits[j], bounds[j]) != (bits[i], bounds[i]) or j < i) for j in range(len(bits)))
        assert (i in front) != dominated


def test_points_below_the_line_are_suspect_or_refuted():
    certs = pd.DataFrame({"error_bound": [0.3, 0.09, 0.05], "target_test_err": [0.1, 0.1, 0.1],
                          "refuted": [False, False, True]})
    suspect, refuted = report.below_the_line(certs)
    assert list(suspect) == [False, True, False] and list(refuted) == [False, False, True]


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_task_toml) -> Path:
    import os

    folder = tmp_path_factory.mktemp("report")
    (folder / "bench.toml").write_text(tiny_task_toml + """
[profiles.default]
tasks = ["tiny"]
seeds = [0]
compressors = ["dense", "quantize", "hw-kmeans"]
bounds = ["occam", "catoni", "mi", "hessian"]
[profiles.default.compressor.quantize]
levels = [2, 4]
[profiles.default.compressor.hw-kmeans]
levels = [2, 8]
curvature_examples = 300
[profiles.default.bound.hessian]
form = ["lower", "diag"]
prior_std_grid = 6
beta_grid = 7
""")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["run", "--no-leaderboard"]) == 0
    finally:
        os.chdir(cwd)
    return folder / "results"


def test_two_builds_are_identical(results, tmp_path):
    a, b = report.build(results, tmp_path / "a"), report.build(results, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    import re

    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', text)  # nothing loaded from a network (no CDN)
    assert "<metadata>" not in text
    # size vs bound, bound vs test, itemized bits, rate-risk, curvature floor and trade-off; a bar per drill-down
    assert text.count("<svg") == 6 + text.count("<details")
    assert text.count("<figcaption>") == 6  # every figure says what it shows


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`apt-get install -y chromium`)")
def test_the_page_in_a_real_browser(results, tmp_path):
    from playwright.sync_api import sync_playwright

    index = report.build(results, tmp_path / "site")
    df = pd.read_parquet(results)
    ok_certificates = int(((df["status"] == "ok") & (df["bound_kind"] == "certificate")).sum())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(index.as_uri())
            assert errors == []
            svgs = page.locator(".figs .fig svg")
            assert svgs.count() == 6
            for i in range(svgs.count()):
                assert svgs.nth(i).locator("[id^=marks] path, [id^=marks] use, path[id^=marks]").count() > 0
            rows = sum(page.locator(f"h3:text-matches('^{title}') + table tbody tr").count()
                       for title in ("Certificates", "Vacuous", "Refuted"))
            assert rows == ok_certificates
            drilled = page.locator("details")
            assert page.locator("details .fig.bits svg [id^=marks-bits]").count() >= drilled.count() > 0
            details = drilled.first
            assert not details.evaluate("d => d.open")
            details.locator("summary").click()
            assert details.evaluate("d => d.open")
            header = page.locator("h3:text-matches('^Certificates') + table th").nth(6)  # error bound %
            header.click()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def datadep_results(tmp_path_factory, tiny_task_toml) -> Path:
    """The tiny task with a data-dependent prior (half the training set), its own prior and a compressor."""
    import os

    folder = tmp_path_factory.mktemp("datadep")
    (folder / "bench.toml").write_text(tiny_task_toml + '[profiles.default]\ntasks = ["tiny"]\nseeds = [0]\n'
                                       'compressors = ["prior", "quantize"]\nbounds = ["occam"]\n')
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["run", "--set", "task.tiny.dataset_params.prior_fraction=0.5",
                     "--set", "compressor.quantize.levels=4", "--no-leaderboard"]) == 0
    finally:
        os.chdir(cwd)
    return folder / "results"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`apt-get install -y chromium`)")
def test_a_merged_page_with_anchors_bits_and_prior_diagnostics_in_a_real_browser(results, datadep_results, tmp_path,
                                                                              monkeypatch):
    from playwright.sync_api import sync_playwright

    from bench import anchors

    published = anchors.Anchor("digits", "data-free", 0.3, 0.1, "a method", "Someone et al. 2020, A title", "Table 1")
    monkeypatch.setattr(anchors, "load_anchors", lambda *a: (published,))
    index = report.build([results, datadep_results], tmp_path / "merged")
    datadep = pd.read_parquet(datadep_results)
    datadep_certs = int(((datadep["status"] == "ok") & (datadep["bound_kind"] == "certificate")).sum())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(index.as_uri())
            assert errors == []
            # a board merged from two folders: both named, each drill-down verified against its own folder
            header = page.locator("p.note").first.inner_text()
            assert str(results) in header and str(datadep_results) in header
            assert page.locator(f"details code:text-matches('--results {datadep_results} ')").count() == datadep_certs
            # the published certificate: a mark and its label on the size-vs-bound figure, and a table row
            assert page.locator(".figs svg [id^=anchor-0]").count() >= 1
            assert page.locator(".figs svg text:text-matches('Someone et al. 2020 \\\\(data-free\\\\) 30.0 %')").count() == 1
            assert page.locator("h3:text-matches('^Published certificates') + table tbody tr").count() == 1
            # itemized bits: the task's bar has drawn items, and so does every drill-down
            assert page.locator(".figs .fig svg [id^=marks-bits]").count() > 0
            assert page.locator("details .fig.bits svg [id^=marks-bits]").count() >= page.locator("details").count()
            # prior diagnostics: a row per data-dependent certificate, and in its drill-down
            assert page.locator("h3:text-matches('^Data-dependent priors') + table tbody tr").count() == datadep_certs
            first = page.locator("details", has_text="held-out bound of the prior alone").first
            first.locator("summary").click()
            assert first.locator("td:text-is('held-out bound of the prior alone (0 bits)')").is_visible()
            page.screenshot(path=str(tmp_path / "merged.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "merged.png").stat().st_size > 10_000
