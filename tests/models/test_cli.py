import json

import pytest

from lumos.cli.main import main
from lumos.models import save_pretrained
from models._factories import tiny_lumos


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    save_pretrained(tiny_lumos([0, 1]), d, max_shard_size=40_000)
    return d


def test_generate_prints_text_and_writes_run(model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["generate", "--model", str(model_dir), "--prompt", "Hello", "--prompt", "Hi there!",
                   "--max-new-tokens", "5", "--temperature", "0", "--out", str(out), "--json",
                   "--format", "minimax_m1"])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["prompt"] for r in printed["results"]] == ["Hello", "Hi there!"]
    assert all(len(r["tokens"]) == len(r["logprobs"]) <= 5 for r in printed["results"])
    for name in ("config.json", "manifest.json", "metrics.jsonl", "report.html"):
        assert (out / name).is_file()
    assert json.loads((out / "manifest.json").read_text())["status"] == "ok"
    # greedy from the CLI equals the library call on the same (left-padded) batch
    import torch

    from lumos.models import ByteTokenizer, generate, load_pretrained

    model, tok = load_pretrained(model_dir), ByteTokenizer()
    ids = torch.tensor([tok.encode("Hello")])
    ref = generate(model, ids, max_new_tokens=5)
    n = int(ref.mask.sum())
    assert printed["results"][0]["tokens"] == ref.tokens[0, :n].tolist()


def test_generate_compile_flag_same_tokens(model_dir, tmp_path, capsys):
    args = ["generate", "--model", str(model_dir), "--prompt", "Hello", "--max-new-tokens", "6", "--temperature",
            "0", "--json"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    eager = json.loads(capsys.readouterr().out)["results"][0]
    assert main(args + ["--out", str(tmp_path / "b"), "--compile"]) == 0
    compiled = json.loads(capsys.readouterr().out)["results"][0]
    assert compiled["tokens"] == eager["tokens"]
    assert compiled["logprobs"] == pytest.approx(eager["logprobs"], abs=1e-4)


def test_generate_text_output_and_sampling_seed(model_dir, tmp_path, capsys):
    args = ["generate", "--model", str(model_dir), "--prompt", "abc", "--max-new-tokens", "4", "--top-k", "5",
            "--top-p", "0.9", "--seed", "7"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    first = capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    second = capsys.readouterr().out
    assert first.splitlines()[0] == second.splitlines()[0] and first.startswith("abc")


def test_generate_errors_are_one_line_exit_2(model_dir, tmp_path, capsys):
    assert main(["generate", "--model", str(model_dir), "--prompt", "x", "--format", "transformers"]) == 2
    err = capsys.readouterr().err
    assert "'minimax_m1' checkpoint, not 'transformers'" in err and err.count("\n") == 1
    assert main(["generate", "--model", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumos: error: Checkpoint not found") and err.count("\n") == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    shard = sorted(broken.glob("model-*.safetensors"))[0]
    shard.write_bytes(b"\x00" * 10)
    assert main(["generate", "--model", str(broken), "--prompt", "x", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()  # nothing computed, no run directory


def test_generate_from_a_run_directory(tmp_path, capsys):
    """--model RUN_DIR opens the run's latest checkpoint (as lumos rl train writes it) and its tokens equal the
    library's greedy generate on that model."""
    import torch

    from lumos.models import ByteTokenizer, generate, tiny_hybrid
    from lumos.rl.checkpoint import save_checkpoint

    model = tiny_hybrid(32, 2, seed=4).eval()
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    (run / "config.json").write_text(json.dumps({"model": "hybrid"}))
    save_checkpoint(run / "checkpoints", 7, model, torch.optim.AdamW(model.parameters()), {})
    assert main(["generate", "--model", str(run), "--prompt", "12+3=", "--max-new-tokens", "4", "--temperature", "0",
                 "--json", "--out", str(tmp_path / "g")]) == 0
    got = json.loads(capsys.readouterr().out)["results"][0]["tokens"]
    ref = generate(model, torch.tensor([ByteTokenizer().encode("12+3=")]), max_new_tokens=4)
    assert got == ref.tokens[0, :int(ref.mask.sum())].tolist()
    assert main(["generate", "--model", str(run), "--prompt", "x", "--format", "transformers"]) == 2
    assert "has lumos's own layout, not 'transformers'" in capsys.readouterr().err


def test_transformers_model_refuses_flags_it_would_ignore(tmp_path, capsys):
    """A user's own transformers model: --compile and the repetition stop are lumos-model options; given
    explicitly they are refused in one line instead of being ignored."""
    from models._own_model import save_model_dir

    own = save_model_dir(tmp_path / "own")
    for extra, flag in ((["--compile"], "--compile"), (["--repetition-truncation", "5"], "--repetition-truncation"),
                        (["--repetition-threshold", "0.5"], "--repetition-threshold")):
        out = tmp_path / "never"
        assert main(["generate", "--model", str(own), "--prompt", "x", *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err and "transformers model" in err, err
        assert not out.exists()
    assert main(["generate", "--model", str(own), "--prompt", "x", "--max-new-tokens", "2",
                 "--out", str(tmp_path / "ok")]) == 0
