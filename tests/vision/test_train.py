import torch

from lumos.vision.train import TrainConfig, default_train_config, load_or_train_builtin


def test_train_cache_roundtrip(tmp_path):
    cfg = default_train_config("cnn", quick=True)
    first = load_or_train_builtin(cfg, tmp_path)
    assert first.path is not None and first.path.is_file()
    before = {k: v.clone() for k, v in first.model.state_dict().items()}
    second = load_or_train_builtin(cfg, tmp_path)  # loaded, not retrained
    for k, v in second.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert second.test_accuracy == first.test_accuracy
    assert TrainConfig(kind="cnn", seed=1).key() != TrainConfig(kind="cnn", seed=0).key()


def test_training_changes_every_parameter():
    from lumos.vision.models import build_builtin
    from lumos.vision.train import train_builtin

    cfg = TrainConfig(kind="vit", n_train=32, n_test=8, epochs=1, batch_size=16, width=8, seed=0)
    torch.manual_seed(cfg.seed)
    trained = train_builtin(cfg)
    torch.manual_seed(cfg.seed)
    fresh = build_builtin(trained.vision).state_dict()
    for k, v in trained.model.state_dict().items():
        if v.is_floating_point() and "running" not in k:
            assert not torch.equal(v, fresh[k]), k
    assert 0.0 <= trained.test_accuracy <= 1.0


def test_a_cached_model_with_a_malformed_mean_is_refused_at_load(tmp_path):
    import json

    import pytest

    from lumos.core.errors import LumosError

    cfg = default_train_config("cnn", quick=True)
    trained = load_or_train_builtin(cfg, tmp_path)
    assert len(trained.mean) == len(trained.std) == 3
    meta_path = trained.path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["mean"] = meta["mean"][:2]  # two channels: the model would fail only later, at normalisation
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(LumosError, match="does not fit.*mean has 2 values"):
        load_or_train_builtin(cfg, tmp_path)
