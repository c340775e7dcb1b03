import json

from initopt.output import report


def write_run(directory, metrics, command="train"):
    directory.mkdir(parents=True)
    (directory / "run.json").write_text(json.dumps({"command": command, "status": "complete"}))
    (directory / "metrics.json").write_text(json.dumps(metrics))


def test_finds_training_runs_only_and_makes_rows(tmp_path):
    write_run(tmp_path / "g" / "sgd", {"optimizer": "sgd", "lr": 0.1, "test_acc": 0.8, "status": "complete",
                                        "epochs_completed": 2, "best_val_acc": 0.79, "seconds_per_epoch": 1.0})
    write_run(tmp_path / "g" / "adam", {"optimizer": "adam", "lr": 1e-3, "seeds": [1, 2], "test_acc": 0.85,
                                         "test_acc_ci95": [0.84, 0.86], "status": "complete", "epochs_completed": 2})
    write_run(tmp_path / "s" / "kaiming-relu", {"act_var": [1.0]}, command="init-stats")
    runs = [report.load_run(d, tmp_path) for d in report.find_runs([tmp_path])]
    rows = sorted((report.row(r) for r in runs), key=lambda r: r["optimizer"])
    assert [r["run"] for r in rows] == ["g/adam", "g/sgd"]
    assert rows[0]["seeds"] == 2 and rows[0]["ci95_low"] == 0.84 and rows[1]["seeds"] == 1
    md = report.markdown(rows).splitlines()
    assert md[0].startswith("| run | optimizer") and len(md) == 4 and "0.85" in md[2]
    csv_lines = report.csv_text(rows).splitlines()
    assert csv_lines[1].startswith("g/adam,adam,0.001,2,2,complete,0.85,0.84,0.86")
