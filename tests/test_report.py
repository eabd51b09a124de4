"""sedc.report: summary figures, the Markdown table and the self-contained HTML page.

The figures are checked against values computed by hand from the seven rows of ROWS below.
The page is checked as text (links, escaping, no network) and in a real headless Chromium
(console errors, filters, sorting), fetched by tests/helpers/browser.py.
"""

from __future__ import annotations

import json
import os
import random
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from sedc.report import format_markdown, load_results, summarize, write_report


def row(image, mode, found, original, new, segments, total, evals, time, stop, figure,
        target=None, **extra):
    """A results.jsonl row; ``original`` and ``new`` are (class, label)."""
    return {"image": image, "found": found, "original_class": original[0],
            "original_label": original[1], "original_score": 0.8, "new_class": new[0],
            "new_label": new[1], "new_score": 0.4, "original_class_score": 0.2,
            "removed": segments, "n_segments_total": total, "n_evaluations": evals,
            "elapsed_s": time, "mode": mode, "stop_reason": stop, "target": target,
            "target_label": None if target is None else new[1], "figure": figure,
            "model": "efficientnet-lite0", "segmentation": "quickshift", **extra}


CAT, TABBY, TIGER = (285, "Egyptian cat"), (281, "tabby"), (282, "tiger cat")
ESPRESSO, EGGNOG = (967, "espresso"), (969, "eggnog")
PLATFORM, MISSILE, BOBSLED = (540, "drilling platform"), (657, "missile"), (450, "bobsled")


def labels(true, correct=None):
    """The keys a labelled run adds (``correct`` left out when None)."""
    out = {"true_class": true[0], "true_label": true[1]}
    return out if correct is None else {**out, "correct": correct}


ROWS = [
    # 0: blur, found k=3, labelled and correct
    row("a.png", "blur", True, CAT, TABBY, [3, 17, 40], 80, 50, 4.0, "found", "a_blur.png",
        **labels(CAT, True)),
    # 1: blur, found k=1, labelled without "correct" (967 == 967: correct); no figure drawn
    row("b.png", "blur", True, ESPRESSO, EGGNOG, [1], 60, 10, 1.0, "found", None,
        **labels(ESPRESSO)),
    # 2: blur, not found (exhausted), misclassified (missile shown as drilling platform)
    row("c.png", "blur", False, PLATFORM, PLATFORM, [], 40, 200, 6.0, "exhausted", "c_blur.png",
        **labels(MISSILE, False)),
    # 3: blur, not found (time limit), unlabelled; its segments must not count in k
    row("d.png", "blur", False, BOBSLED, BOBSLED, [4, 5], 100, 300, 60.0, "max_time",
        "d_blur.png"),
    # 4: mean, found k=5, labelled and correct
    row("a.png", "mean", True, CAT, TABBY, [1, 2, 3, 4, 6], 80, 120, 3.0, "found", "a_mean.png",
        **labels(CAT, True)),
    # 5: mean, SEDC-T toward the true class of a misclassified image: found k=2
    row("c.png", "mean", True, PLATFORM, MISSILE, [7, 9], 40, 30, 2.0, "found", "c_mean.png",
        target=657, **labels(MISSILE, False)),
    # 6: mean, not found (evaluation limit), misclassified (tabby shown as Egyptian cat),
    #    a future "runtime" key; its figure file is missing on disk
    row("e.png", "mean", False, CAT, CAT, [], 50, 100, 5.0, "max_evals", "e_mean.png",
        runtime={"device": "cpu"}, **labels(TABBY, False)),
]
ERRORS = [{"image": "broken.png", "error": "cannot identify image file <broken & bad>"}]


def test_summary_figures_by_hand():
    s = summarize(ROWS, ERRORS)
    assert s["n_images"] == 7                       # rows, i.e. (image, mode) pairs
    assert s["n_unique_images"] == 5                # a, b, c, d, e
    assert s["n_found"] == 4                        # rows 0, 1, 4, 5
    assert s["found_rate"] == pytest.approx(4 / 7)
    assert s["mean_segments"] == pytest.approx(2.75)   # k of found rows: 3, 1, 5, 2 -> 11 / 4
    assert s["median_segments"] == pytest.approx(2.5)  # 1, 2, 3, 5 -> (2 + 3) / 2
    # 50 + 10 + 200 + 300 + 120 + 30 + 100 = 810 evaluations; 4+1+6+60+3+2+5 = 81 s
    assert s["mean_evaluations"] == pytest.approx(810 / 7)
    assert s["mean_time_s"] == pytest.approx(81 / 7)
    assert s["total_time_s"] == pytest.approx(81)
    assert s["n_stopped_by_limit"] == 2             # rows 3 (max_time) and 6 (max_evals)
    assert s["stopped_by_limit_rate"] == pytest.approx(2 / 7)
    assert s["stop_reasons"] == {"found": 4, "exhausted": 1, "max_time": 1, "max_evals": 1}
    # found rows: Egyptian cat -> tabby (rows 0, 4), espresso -> eggnog, platform -> missile;
    # ties by name, and "d" sorts after "E" but before "e"
    assert s["transitions"] == [{"from": "Egyptian cat", "to": "tabby", "count": 2},
                                {"from": "drilling platform", "to": "missile", "count": 1},
                                {"from": "espresso", "to": "eggnog", "count": 1}]
    assert s["modes"] == ["blur", "mean"]
    assert s["n_errors"] == 1


def test_summary_labelled_figures_by_hand():
    s = summarize(ROWS)
    # labelled images, first row of each: a (correct), b (correct), c (wrong), e (wrong)
    assert (s["n_labelled"], s["n_correct"], s["n_misclassified"]) == (4, 2, 2)
    assert s["accuracy"] == pytest.approx(0.5)
    assert s["confusions"] == [{"true": "missile", "predicted": "drilling platform", "count": 1},
                               {"true": "tabby", "predicted": "Egyptian cat", "count": 1}]
    assert s["misclassified_explained_toward_truth"] == 1       # row 5
    assert s["misclassified_explained_toward_truth_found"] == 1
    assert s["n_errors"] == 0


def test_summary_by_mode_by_hand():
    blur, mean = summarize(ROWS)["by_mode"]["blur"], summarize(ROWS)["by_mode"]["mean"]
    # blur: rows 0-3; found 0 and 1 (k 3 and 1); evaluations 560; time 71 s; 1 limit stop
    assert (blur["n_images"], blur["n_found"]) == (4, 2)
    assert blur["found_rate"] == pytest.approx(0.5)
    assert (blur["mean_segments"], blur["median_segments"]) == (pytest.approx(2), pytest.approx(2))
    assert blur["mean_evaluations"] == pytest.approx(140)
    assert blur["mean_time_s"] == pytest.approx(17.75)
    assert blur["stopped_by_limit_rate"] == pytest.approx(0.25)
    assert blur["accuracy"] == pytest.approx(2 / 3)             # a, b right; c wrong
    assert blur["transitions"] == [{"from": "Egyptian cat", "to": "tabby", "count": 1},
                                   {"from": "espresso", "to": "eggnog", "count": 1}]
    # mean: rows 4-6; found 4 and 5 (k 5 and 2); evaluations 250; time 10 s; 1 limit stop
    assert (mean["n_images"], mean["n_found"]) == (3, 2)
    assert mean["found_rate"] == pytest.approx(2 / 3)
    assert (mean["mean_segments"], mean["median_segments"]) == (pytest.approx(3.5),
                                                                pytest.approx(3.5))
    assert mean["mean_evaluations"] == pytest.approx(250 / 3)
    assert mean["mean_time_s"] == pytest.approx(10 / 3)
    assert mean["stopped_by_limit_rate"] == pytest.approx(1 / 3)
    assert mean["accuracy"] == pytest.approx(1 / 3)             # a right; c, e wrong
    assert mean["misclassified_explained_toward_truth"] == 1
    assert "by_mode" not in mean and "n_errors" not in mean


def test_a_limit_stop_that_found_a_counterfactual_counts_as_found():
    # real runs write found=true with stop_reason max_time when both happen in one batch
    rows = [row("x.png", "blur", True, CAT, TABBY, [1, 2], 30, 40, 9.0, "max_time", None),
            row("y.png", "blur", False, CAT, CAT, [], 30, 40, 9.0, "max_time", None)]
    s = summarize(rows)
    assert (s["n_found"], s["n_stopped_by_limit"]) == (1, 1)      # y only
    assert s["stop_reasons"]["max_time"] == 2                     # as written


def test_summary_of_nothing(tmp_path):
    assert write_report(tmp_path, []).is_file()
    s = summarize([])
    assert (s["n_images"], s["n_found"], s["transitions"], s["by_mode"]) == (0, 0, [], {})
    assert s["found_rate"] is s["mean_segments"] is s["mean_time_s"] is s["accuracy"] is None
    assert "| all | 0 | - |" in format_markdown(s)


def test_markdown_table():
    text = format_markdown(summarize(ROWS, ERRORS))
    lines = text.splitlines()
    assert lines[0] == ("| mode | images | found | stopped by a limit | mean k | median k "
                        "| mean evaluations | mean time (s) |")
    assert "| blur | 4 | 50.0 % | 25.0 % | 2.00 | 2.0 | 140.0 | 17.75 |" in lines
    assert "| mean | 3 | 66.7 % | 33.3 % | 3.50 | 3.5 | 83.3 | 3.33 |" in lines
    assert "| all | 7 | 57.1 % | 28.6 % | 2.75 | 2.5 | 115.7 | 11.57 |" in lines
    assert "Accuracy: 50.0 % (2 of 4 images)." in lines
    assert "- Egyptian cat -> tabby: 2" in lines
    assert "1 image(s) failed (see errors.jsonl)." in lines


def test_load_results_skips_a_torn_last_line(tmp_path):
    (tmp_path / "results.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in ROWS[:2]) + '{"image": "half')
    rows, errors = load_results(tmp_path)
    assert rows == ROWS[:2] and errors == []


def test_load_results_reads_rows_of_earlier_versions(tmp_path):
    """Rows written before 0.2 name the removed segments "segments": read as "removed"."""
    old = [{("segments" if key == "removed" else key): value for key, value in row.items()} for row in ROWS]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    rows, _ = load_results(tmp_path)
    assert [r["removed"] for r in rows] == [r["removed"] for r in ROWS] and "segments" not in rows[0]


def test_load_results_warns_about_lines_that_are_not_rows(tmp_path):
    (tmp_path / "results.jsonl").write_text(json.dumps(ROWS[0]) + "\nnot json\n[1]\n" + json.dumps(ROWS[1]) + "\n")
    with pytest.warns(UserWarning, match=r"skipped 2 line\(s\) that are not result rows \(line 2, 3\)"):
        rows, _ = load_results(tmp_path)
    assert rows == ROWS[:2]


# ---------------------------------------------------------------- the page, as text

def draw_figure(path: Path, seed: int) -> None:
    """A small 3-panel stand-in for a figure PNG."""
    rng = random.Random(seed)
    image = Image.new("RGB", (330, 120), "white")
    for panel in range(3):
        colour = tuple(rng.randrange(40, 220) for _ in range(3))
        image.paste(colour, (panel * 110 + 5, 5, panel * 110 + 105, 115))
    image.save(path)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A results folder with figures, results.jsonl, errors.jsonl and its report."""
    folder = tmp_path_factory.mktemp("report")
    rows = [dict(r) for r in ROWS]
    rows[6]["true_label"] = "<b>bold</b> & \"quoted\""            # must stay text
    rows[4]["figure"] = "a mean #1.png"                            # needs URL-encoding
    for i, r in enumerate(rows):
        if r["figure"] and r["figure"] != "e_mean.png":
            draw_figure(folder / r["figure"], i)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "errors.jsonl").write_text(json.dumps(ERRORS[0]) + "\n")
    rows, errors = load_results(folder)
    return write_report(folder, rows, errors)


class Links(HTMLParser):
    """Collects every href and src attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("href", "src") and value]


def page_data(page: str) -> dict:
    """The gallery's JSON data."""
    match = re.search(r'<script type="application/json" id="sedc-data">(.*?)</script>', page,
                      re.S)
    assert match
    return json.loads(match.group(1))


def test_report_files_and_summary_json(report):
    folder = report.parent
    assert report.name == "report.html"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == json.loads(json.dumps(summarize(load_results(folder)[0], ERRORS)))
    for key in ("n_images", "n_found", "found_rate", "mean_segments", "median_segments",
                "mean_evaluations", "mean_time_s", "by_mode", "transitions"):
        assert key in summary
    # one thumbnail per existing figure (rows 0, 2, 3, 4, 5), small JPEGs
    thumbs = sorted(p.name for p in (folder / "thumbs").iterdir())
    assert thumbs == ["a mean #1.jpg", "a_blur.jpg", "c_blur.jpg", "c_mean.jpg", "d_blur.jpg"]
    with Image.open(folder / "thumbs" / "a_blur.jpg") as thumb:
        assert thumb.format == "JPEG" and thumb.width <= 360


def test_thumbnails_are_made_once(report):
    folder = report.parent
    thumb = folder / "thumbs" / "a_blur.jpg"
    os.utime(thumb, (1e9, 1e9))                     # older than its figure: remade
    rows, errors = load_results(folder)
    write_report(folder, rows, errors)
    made = thumb.stat().st_mtime
    assert made > 1e9
    write_report(folder, rows, errors)               # up to date: left alone
    assert thumb.stat().st_mtime == made


def test_every_link_is_local_and_exists(report):
    folder, page = report.parent, report.read_text()
    assert "http:" not in page and "https:" not in page and "//" not in page
    assert "<link" not in page and "@import" not in page and "url(" not in page
    parser = Links()
    parser.feed(page)
    data = page_data(page)
    figures = [r[data["columns"]["figure"]] for r in data["rows"]]
    thumbs = ["thumbs/" + f.rsplit(".", 1)[0] + ".jpg"
              for f, r in zip(figures, data["rows"], strict=True)
              if f and r[data["columns"]["thumb"]]]
    urls = parser.urls + [f for f in figures if f] + thumbs
    assert len(thumbs) == 5 and "c_mean.png" in parser.urls   # toward-truth table links it
    assert "a%20mean%20%231.png" in figures
    for url in urls:
        assert ":" not in url and not url.startswith("/"), url
        assert (folder / unquote(url)).is_file(), url
    # rows without a figure file (none drawn, or missing on disk) get no link
    assert figures[1] is None and figures[6] is None


def test_strings_from_rows_are_escaped(report):
    page = report.read_text()
    assert "<b>bold</b>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;" in page       # tables
    assert "\\u003cb\\u003ebold" in page                                      # gallery data
    assert "cannot identify image file &lt;broken &amp; bad&gt;" in page      # errors list


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` plausible rows in three modes, without figures."""
    rng = random.Random(seed)
    classes = [(i, f"class {i}") for i in range(200)]
    rows = []
    for i in range(n):
        found = rng.random() < 0.8
        total = rng.randrange(20, 120)
        k = rng.randrange(1, 12)
        stop = "found" if found else rng.choice(["exhausted", "max_time", "max_evals"])
        labelled = labels(rng.choice(classes), rng.random() < 0.7)
        rows.append(row(f"images/{i:05d}.jpg", ("blur", "mean", "inpaint")[i % 3], found,
                        rng.choice(classes), rng.choice(classes),
                        rng.sample(range(total), k) if found else [], total,
                        rng.randrange(total, 40 * total), round(rng.uniform(0.2, 60), 4), stop,
                        None, **labelled))
    return rows


@pytest.fixture(scope="module")
def big_report(tmp_path_factory):
    """The report of 10,000 synthetic rows."""
    return write_report(tmp_path_factory.mktemp("big"), synthetic_rows(10_000))


def test_ten_thousand_rows_stay_small(big_report):
    size = big_report.stat().st_size
    assert size < 2_500_000, size                    # about 110 bytes a row, plots included
    page = big_report.read_text()
    assert len(page_data(page)["rows"]) == 10_000
    assert page.count("<circle") < 12_000           # dense scatter plots merge points
    summary = json.loads((big_report.parent / "summary.json").read_text())
    assert summary["n_images"] == 10_000 and set(summary["by_mode"]) == {"blur", "mean", "inpaint"}


# ---------------------------------------------------------------- the page, in Chromium

@pytest.fixture
def page(browser):
    """A fresh tab; fails the test on any console error or uncaught exception."""
    tab = browser.new_page()
    tab.set_default_timeout(30_000)
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda err: problems.append(str(err)))
    yield tab
    tab.close()
    assert problems == []


def shown(page) -> list[int]:
    """Row indices of the gallery cards, in page order."""
    return page.eval_on_selector_all("#gallery .card", "cards => cards.map(c => +c.dataset.i)")


def test_browser_filters_and_sorts(report, page):
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert shown(page) == [0, 1, 2, 3, 4, 5, 6]
    assert page.locator("#gallery img").count() == 5
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth)")
    assert "<b>bold</b>" in page.inner_text("#gallery")     # shown as text, not markup

    page.click("#status-filter button[data-value=notfound]")
    assert shown(page) == [2, 3, 6]
    page.click("#mode-filter button:has-text('mean')")
    assert shown(page) == [6]
    page.click("#status-filter button[data-value=all]")
    assert shown(page) == [4, 5, 6]
    page.click("#mode-filter button[data-value='-1']")
    page.click("#status-filter button[data-value=misclassified]")
    assert shown(page) == [2, 5, 6]
    page.click("#status-filter button[data-value=all]")

    page.select_option("#sort", "k-desc")             # k 5, 3, 2, 1, then the rows not found
    assert shown(page) == [4, 0, 5, 1, 2, 3, 6]
    page.select_option("#sort", "time-desc")          # 60, 6, 5, 4, 3, 2, 1 s
    assert shown(page) == [3, 2, 6, 0, 4, 5, 1]
    page.fill("#search", "missile")
    page.wait_for_function("document.querySelectorAll('#gallery .card').length === 2")
    assert sorted(shown(page)) == [2, 5]


def test_browser_pages_ten_thousand_rows(big_report, page):
    page.goto(big_report.as_uri())
    page.wait_for_load_state("load")
    assert len(shown(page)) == 60                     # one page of cards, not 10,000
    page.click("#status-filter button[data-value=notfound]")
    not_found = page.eval_on_selector_all("#gallery .card", "cs => cs.map(c => c.dataset.found)")
    assert not_found == ["0"] * 60
    page.click("#more")
    assert len(shown(page)) == 120
    total = json.loads((big_report.parent / "summary.json").read_text())
    n = total["n_images"] - total["n_found"]
    assert f"of {n:,} matching" in page.inner_text("#count")
