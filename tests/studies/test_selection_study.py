"""The selection study: data settings, weighted training, summary tables, run directory and CLI (smoke size)."""

import json

import numpy as np
import pytest

from lumos.cli.main import main
from lumos.core.errors import LumosError
from lumos.studies.selection_study import (
    SelectionStudyConfig,
    load_study_data,
    paper_table,
    run_selection_study,
    summarize,
    train_with_selector,
)


def _tiny(**kw):
    base = {"datasets": ("digits",), "settings": ("clean",), "methods": ("chg", "gradmatch"), "fractions": (0.1,),
            "epochs": 1}
    base.update(kw)
    return SelectionStudyConfig.quick(**base)


def test_settings_keep_the_test_split_clean_and_balanced():
    cfg = _tiny()
    clean = load_study_data("digits", "clean", 0, cfg)
    imb = load_study_data("digits", "imbalance", 0, cfg)
    noisy = load_study_data("digits", "noise30", 0, cfg)
    assert np.array_equal(clean.y_test.numpy(), imb.y_test.numpy())  # same held-out test set per seed
    assert np.array_equal(clean.y_test.numpy(), noisy.y_test.numpy())
    counts = np.bincount(imb.y_train.numpy(), minlength=10)
    assert (counts < 0.2 * np.median(counts)).sum() == 3  # int(0.3·10) classes cut
    n_pool = len(clean.y_train) + len(clean.y_val)
    assert len(clean.y_val) == int(0.1 * n_pool) and len(clean.y_test) == int(0.3 * 1797)
    assert abs(float(clean.X_train.mean())) < 1e-5  # standardised with training statistics
    # 30 % relabelled uniformly over 10 classes: about 27 % actually change; the mask marks exactly those
    assert clean.relabelled is None and 0.2 < float(noisy.relabelled.float().mean()) < 0.34
    assert np.array_equal((noisy.y_train != clean.y_train).numpy(), noisy.relabelled.numpy())  # same split per seed


def test_shapes_data_is_images_with_a_clean_test_split():
    cfg = _tiny(datasets=("shapes",))
    d = load_study_data("shapes", "noise30", 0, cfg)
    assert d.X_train.shape[1:] == (3, 32, 32) and d.n_classes == 6
    assert len(d.y_test) == cfg.n_test_images and len(d.y_train) + len(d.y_val) == cfg.n_images


def test_training_runs_with_every_method_and_reports_times():
    cfg = _tiny(methods=("chg", "random", "gradmatch", "glister"), epochs=2, select_every=1)
    data = load_study_data("digits", "noise30", 0, cfg)
    for method in ("full", *cfg.methods):
        r = train_with_selector(data, method, 1.0 if method == "full" else 0.1, 0, cfg)
        assert 0 <= r["accuracy"] <= 1 and r["seconds"] >= r["select_seconds"] >= 0
        assert r["n_selections"] == (0 if method == "full" else 2)
        assert (r["relabelled_share"] is None) == (method == "full")
        if method != "full":
            assert 0 <= r["relabelled_share"] <= 1


def test_summary_and_paper_table_by_hand():
    rows = [{"dataset": "digits", "setting": "clean", "method": "chg", "fraction": 0.1, "seed": s, "accuracy": a,
             "seconds": t, "select_seconds": 0.0} for s, (a, t) in enumerate([(0.5, 1.0), (0.7, 3.0)])]
    rows.append({"dataset": "digits", "setting": "clean", "method": "full", "fraction": 1.0, "seed": 0,
                 "accuracy": 0.9, "seconds": 5.0, "select_seconds": 0.0})
    summary = summarize(rows)
    chg = next(r for r in summary if r["method"] == "chg")
    # mean 0.6, sd (ddof=1) = sqrt(((0.1)² + (0.1)²) / 1) = 0.1414
    assert chg["acc_mean"] == 0.6 and chg["acc_sd"] == pytest.approx(0.1414) and chg["seconds"] == 2.0
    table = paper_table(summary, "digits")
    assert table[0] == {"method": "Full data", "clean 10%": "", "clean 100%": "90.0 ± 0.0"}
    assert table[1] == {"method": "CHG", "clean 10%": "60.0 ± 14.1", "clean 100%": ""}
    assert paper_table(summary, "digits", "seconds")[1]["clean 10%"] == "2.0"


def test_resume_skips_logged_runs_and_seeds_can_be_split():
    cfg = _tiny(methods=("random",), full=False, seeds=2)
    rows = run_selection_study(cfg)
    assert [r["seed"] for r in rows] == [0, 1]
    split = run_selection_study(_tiny(methods=("random",), full=False, seeds=1, first_seed=1))
    assert [(r["seed"], r["accuracy"]) for r in split] == [(1, rows[1]["accuracy"])]  # the same run on its own
    logged = []
    again = run_selection_study(cfg, log=logged.append, done=rows)
    assert again == rows and logged == []


def test_config_lists_every_problem_at_once():
    with pytest.raises(LumosError) as exc:
        SelectionStudyConfig(datasets=("cifar",), fractions=(0.0, 0.5), epochs=0)
    msg = str(exc.value)
    assert "datasets" in msg and "fractions" in msg and "epochs" in msg


def test_cli_writes_a_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["select-study", "--quick", "--datasets", "digits", "--settings", "noise30", "--methods",
                 "chg,glister", "--fractions", "0.1", "--epochs", "1", "--out", str(out)])
    assert code == 0
    for name in ("metrics.jsonl", "results.json", "results.md", "report.html", "config.json",
                 "plots/selection_noise30.png"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["method"] for r in rows} == {"full", "chg", "glister"}
    md = (out / "results.md").read_text()
    assert "| GLISTER |" in md and "CHG − GLISTER" in md            # per-sample GLISTER, paired difference row
    # a resume that repeats the configuration (the seed range may grow) reuses the logged rows
    assert main(["select-study", "--quick", "--datasets", "digits", "--settings", "noise30", "--methods",
                 "chg,glister", "--fractions", "0.1", "--epochs", "1", "--resume", "--out", str(out)]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == len(rows)


@pytest.mark.parametrize("argv, needle", [
    (["--fractions", "1.5"], "fractions"),
    (["--fractions", "a,b"], "fractions"),
    (["--methods", "craig"], "craig"),
    (["--seeds", "0"], "seeds"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    assert main(["select-study", "--quick", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_the_report_needs_no_rl_extra():
    """The selection study's paired table is computed without importing lumos.rl (an install with only the
    valuation and vision extras ran the whole grid, then failed in the report)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from lumos.studies.selection_study import paired_table\n"
            "rows = [{'dataset': 'd', 'setting': 's', 'method': m, 'fraction': 0.1, 'seed': k, 'accuracy': a}\n"
            "        for k in range(3) for m, a in (('chg', 0.5 + k / 10), ('random', 0.4))]\n"
            "assert len(paired_table(rows, n_boot=50)) == 1\n"
            "assert not [m for m in sys.modules if m.startswith('lumos.rl')], 'lumos.rl imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
