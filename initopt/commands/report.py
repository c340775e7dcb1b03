"""``initopt report``: one table (terminal, Markdown, CSV) and one figure of finished training runs,
and with ``html`` one page of them all (``report.html``)."""

from __future__ import annotations

from pathlib import Path

from initopt.errors import InitoptError
from initopt.output import html as html_page
from initopt.output import io
from initopt.output import report as rep

FIGURES = (("report.png", "Validation accuracy per epoch and test accuracy of the runs"),
           ("instruments.png", "The runs' instruments side by side"))


def run(run_dirs: list[Path] | None, out: Path, figures, html: bool = False) -> dict:
    """Reports the runs under ``run_dirs`` (default: ``out/train`` and ``out/tune``) in
    ``out/report``. Returns the rows, the directory and a sentence per damaged run (left out)."""
    root = Path(out) / "train"
    defaults = [d for d in (root, Path(out) / "tune") if d.exists()]
    paths = list(run_dirs) if run_dirs else defaults
    if not paths:
        raise InitoptError(f"No training runs under {root}; run `initopt train` first or name run directories.")
    runs, damaged = rep.load_runs(rep.find_runs(paths), Path(out))
    if not runs:
        raise InitoptError(f"No finished training runs found in {', '.join(map(str, paths))}"
                           + (f" ({len(damaged)} damaged)." if damaged else "."))
    rows = [rep.row(r) for r in runs]
    report_dir = io.ensure_dir(Path(out) / "report")
    io.write_text(report_dir / "report.md", rep.markdown(rows))
    io.write_text(report_dir / "report.csv", rep.csv_text(rows))
    figures.draw(report_dir / "report.png", "report_figure", runs)
    io.remove_files(report_dir, "instruments.png", "report.html")  # none of an earlier report may stay
    if any(r["metrics"].get("instruments") for r in runs):
        figures.draw(report_dir / "instruments.png", "instruments_side_by_side", runs)
    figures.wait()
    if html:
        tunes = sorted({t.parent for p in paths for t in ([p / "tune.json"] if (p / "tune.json").is_file()
                                                           else p.rglob("tune.json"))})
        io.write_text(report_dir / "report.html", html_page.page(
            rows, rep.COLUMNS, [r["dir"] for r in runs], report_dir,
            [(report_dir / name, caption) for name, caption in FIGURES], tunes))
    io.write_json(report_dir / "report.json", rows)
    return {"runs": rows, "report_dir": str(report_dir), "damaged": damaged}
