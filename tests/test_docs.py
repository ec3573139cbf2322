"""The plugin guide stays true: its example works and its hook reference matches the hookspecs."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ganlab.config import load_config
from ganlab.docgen import rewrite
from ganlab.plugins import make_plugin_manager
from ganlab.scaffold import new_trick
from ganlab.trainer import train

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"


def test_hook_reference_is_generated_from_the_hookspecs():
    text = GUIDE.read_text()
    assert rewrite(text) == text, "run: python -m ganlab.docgen docs/plugins.md"


def test_walkthrough_trick_works_as_written(tmp_path, tiny_images):
    blocks = re.findall(r"```(python|toml)\n(.*?)```", GUIDE.read_text(), re.S)
    code = next(body for lang, body in blocks if lang == "python")
    toml = next(body for lang, body in blocks if lang == "toml")
    assert len(code.strip().splitlines()) <= 30
    (tmp_path / "translate.py").write_text(code)
    (tmp_path / "baseline.toml").write_text(
        f'runs_dir = "{tmp_path / "runs"}"\ndevice = "cpu"\n[model]\nlatent_dim = 8\ng_width = 4\nd_width = 4\n'
        '[data]\nimage_size = 16\n[train]\nepochs = 1\nbatch_size = 8\nsample_every = 0\n[tricks.soft_labels]\n')
    (tmp_path / "my.toml").write_text(toml)
    config = load_config(tmp_path / "my.toml")
    assert config.enabled_tricks() == ["soft_labels", "translate"] and config.tricks["translate"]["pixels"] == 6
    pm = make_plugin_manager(config)
    assert [i.plugin_name for i in pm.hook.ganlab_fake_batch.get_hookimpls()] == ["translate"]
    assert train(config, quiet=True, images=tiny_images).status == "finished"


def test_new_trick_scaffold_passes_its_own_tests(tmp_path):
    module, test = new_trick("my_trick", tmp_path)
    assert module.exists() and test.exists()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
