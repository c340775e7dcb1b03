"""``report.html``: one self-contained page of a report, to open in a browser or send to a
colleague. The table of runs (sorted by a click on a column's header), the report's figures and
each tune's figures, embedded as data URIs, and links to the run directories; nothing is loaded
from the network."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

TUNE_FIGURES = (("lr_sensitivity.png", "Validation accuracy by learning rate"),
                ("budget.png", "Expected best accuracy by tuning budget"),
                ("final.png", "Final runs at the selected rates"))

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-weight: 600; margin-bottom: 0.4em; }
"""

# A click on a header sorts by that column (numbers as numbers, empty cells last); a second click
# reverses; #sort=COLUMN in the address sorts as the page opens. Each image records that it
# loaded (a test's headless browser reads data-loaded).
_SCRIPT = r"""
document.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const up = th.dataset.order !== "up";
  th.closest("tr").querySelectorAll("th").forEach(h => delete h.dataset.order);
  th.dataset.order = up ? "up" : "down";
  const key = tr => tr.cells[col].dataset.value;
  const rows = [...body.rows].sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === "" || y === "") return (x === "") - (y === "");
    const d = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
    return up ? d : -d;
  });
  rows.forEach(r => body.appendChild(r));
}));
const wanted = location.hash.match(/sort=(\w+)/);  // report.html#sort=test_acc opens sorted by it
document.querySelectorAll("th").forEach(th => { if (wanted && th.textContent === wanted[1]) th.click(); });
document.querySelectorAll("img").forEach(img => {
  const done = () => img.dataset.loaded = img.naturalWidth;
  img.complete ? done() : img.addEventListener("load", done);
});
"""


def _cell(value) -> tuple[str, str]:
    """(text shown, value sorted by)."""
    if value is None:
        return "", ""
    if isinstance(value, float):
        return f"{value:.4g}", repr(value)
    return str(value), str(value)


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><figcaption>{html.escape(caption)}</figcaption>'
            f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"></figure>')


def page(rows: list[dict], columns: tuple[str, ...], run_dirs: list[str], report_dir: Path,
         figures: list[tuple[Path, str]], tunes: list[Path]) -> str:
    """The page: ``rows`` (one per run, ``run_dirs`` beside them), the report's ``figures``
    ((PNG, caption), those that exist) and each tune directory's figures."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row, run_dir in zip(rows, run_dirs):
        cells = []
        for c in columns:
            text, value = _cell(row[c])
            if c == "run":
                link = html.escape(os.path.relpath(run_dir, report_dir))
                text = f'<a href="{link}/">{html.escape(text)}</a>'
            else:
                text = html.escape(text)
            cells.append(f'<td data-value="{html.escape(value)}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    parts = [_figure(p, caption) for p, caption in figures if p.is_file()]
    for tune in tunes:
        shown = [_figure(tune / name, f"{tune.name}: {caption}") for name, caption in TUNE_FIGURES
                 if (tune / name).is_file()]
        if shown:
            parts.append(f"<h2>Tune {html.escape(tune.name)}</h2>" + "".join(shown))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>initopt report</title>"
            f"<style>{_STYLE}</style></head><body>\n<h1>initopt report: {len(rows)} runs</h1>\n"
            f"<table id=\"runs\"><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
            + "\n".join(parts) + f"\n<script>{_SCRIPT}</script>\n</body></html>\n")
