from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ganlab.config import build_config, config_from_dict, dump_toml, load_config
from ganlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_baseline_has_the_papers_values():
    c = load_config(ROOT / "experiments" / "baseline.toml")
    assert (c.train.lr_g, c.train.lr_d, c.train.beta1, c.train.beta2) == (5e-4, 5e-4, 0.5, 0.999)
    assert (c.train.batch_size, c.model.latent_dim, c.train.epochs) == (32, 128, 750)
    assert c.enabled_tricks() == ["augment", "input_noise", "soft_labels", "batch_norm", "activation"]
    assert c.tricks["input_noise"]["std"] == 0.1 and c.tricks["soft_labels"]["real"] == 0.8


def test_quick_extends_baseline_with_only_its_differences():
    text = (ROOT / "experiments" / "quick.toml").read_text()
    quick = load_config(ROOT / "experiments" / "quick.toml")
    base = load_config(ROOT / "experiments" / "baseline.toml")
    assert 'extends = "baseline.toml"' in text
    assert quick.train.lr_g == base.train.lr_g and quick.tricks == base.tricks
    assert quick.model.g_width == 32 and quick.name == "quick"


@pytest.mark.parametrize("text, key, fragment", [
    ("bogus = 1", "bogus", "unknown key"),
    ("[train]\nlrg = 0.1", "train.lrg", "unknown key; the keys of [train] are"),
    ("[train]\nbatch_size = 'big'", "train.batch_size", "expected an integer"),
    ("[train]\nbatch_size = 0", "train.batch_size", "must be >= 1"),
    ("[train]\nlr_g = 0", "train.lr_g", "must be > 0.0"),
    ("precision = 'fp16'", "precision", "choose one of 'fp32', 'bf16'"),
    ("[tricks.dropout]\nenabled = true", "tricks.dropout", "known tricks are: activation, augment"),
    ("[tricks.input_noise]\nstd = -1", "tricks.input_noise.std", "must be >= 0.0"),
    ("[tricks.input_noise]\nsdt = 0.1", "tricks.input_noise.sdt", "unknown key"),
    ("[tricks.soft_labels]\nenabled = 'yes'", "tricks.soft_labels.enabled", "true or false"),
    ("[tricks.activation]\ng = 'tanh'", "tricks.activation.g", "'relu', 'leaky_relu'"),
    ("[tricks.soft_labels]\nreal = 0.1\nfake = 0.2", "tricks.soft_labels.real", "must be above fake"),
])
def test_bad_values_name_file_key_and_what_is_allowed(tmp_path, text, key, fragment):
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert info.value.file == str(path.resolve())
    assert fragment in str(info.value)


def test_error_in_parent_names_the_parent_file(tmp_path):
    parent = write(tmp_path / "parent.toml", "[train]\nepochs = -3")
    child = write(tmp_path / "child.toml", 'extends = "parent.toml"\nname = "x"')
    with pytest.raises(ConfigError) as info:
        load_config(child)
    assert info.value.file == str(parent.resolve()) and info.value.key == "train.epochs"


def test_extends_merges_tables_and_keeps_trick_order(tmp_path):
    write(tmp_path / "base.toml", "[train]\nepochs = 5\nbatch_size = 4\n[tricks.soft_labels]\n[tricks.augment]\n")
    child = write(tmp_path / "child.toml",
                  'extends = "base.toml"\n[train]\nepochs = 7\n[tricks.augment]\nenabled = false\n[tricks.activation]\n')
    c = load_config(child)
    assert (c.train.epochs, c.train.batch_size) == (7, 4)
    assert list(c.tricks) == ["soft_labels", "augment", "activation"]
    assert c.enabled_tricks() == ["soft_labels", "activation"]


def test_set_overrides_parse_toml_values(tmp_path):
    path = write(tmp_path / "e.toml", "[tricks.input_noise]\n")
    c = load_config(path, ["train.lr_g=2e-4", "tricks.input_noise.schedule=exponential", "name=abc",
                           "tricks.input_noise.enabled=false"])
    assert c.train.lr_g == 2e-4 and c.tricks["input_noise"]["schedule"] == "exponential" and c.name == "abc"
    assert c.enabled_tricks() == []
    with pytest.raises(ConfigError) as info:
        load_config(path, ["train.lr_g=fast"])
    assert info.value.file == "--set" and info.value.key == "train.lr_g"


def test_circular_extends_is_an_error(tmp_path):
    write(tmp_path / "a.toml", 'extends = "b.toml"')
    write(tmp_path / "b.toml", 'extends = "a.toml"')
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.toml")


def test_syntax_error_names_the_file(tmp_path):
    path = write(tmp_path / "broken.toml", "[train\nepochs = 1")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path)
    assert info.value.file == str(path.resolve())


def test_resolved_config_round_trips_through_toml(tmp_path):
    c = load_config(ROOT / "experiments" / "baseline.toml", ["train.lr_d=1e-4"])
    text = dump_toml(c.to_dict())
    again = config_from_dict(tomllib.loads(text))
    assert again.to_dict() == c.to_dict()


def test_integer_accepted_where_a_float_is_expected():
    c = build_config({"train": {"lr_g": 1}})
    assert c.train.lr_g == 1.0 and isinstance(c.train.lr_g, float)
