"""Where tricks come from: entry points of installed packages, local files, --plugin; clashes and switches."""
from __future__ import annotations

import sys

import pytest

from ganlab.cli import main
from ganlab.errors import ConfigError
from ganlab.plugins import AUTOLOAD_ENV, available_tricks

TRICK = '''
from dataclasses import dataclass
from ganlab import Trick, hookimpl, opt

@dataclass
class Opts:
    amount: float = opt(0.5, "how much", min=0.0, max=1.0)

class Installed(Trick):
    name = "installed_trick"
    Options = Opts

    @hookimpl
    def ganlab_d_targets(self, state):
        state.real_target = 1.0 - self.options.amount
'''


@pytest.fixture
def installed_package(tmp_path, monkeypatch):
    """A real installed distribution (dist-info with an entry point in group `ganlab`) on sys.path."""
    site = tmp_path / "site"
    (site / "gl_extra").mkdir(parents=True)
    (site / "gl_extra" / "__init__.py").write_text(TRICK)
    info = site / "gl_extra-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gl-extra\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ganlab]\ninstalled_trick = gl_extra\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("gl_extra", None)


def test_entry_point_trick_is_found_and_configurable(installed_package, make_config):
    found = available_tricks()
    assert found["installed_trick"].origin == "entry point gl-extra"
    config = make_config(tricks={"installed_trick": {"amount": 0.3}})
    assert config.tricks["installed_trick"] == {"enabled": True, "amount": 0.3}
    with pytest.raises(ConfigError, match="must be >= 0.0 and <= 1.0"):
        make_config(tricks={"installed_trick": {"amount": 3}})


def test_autoload_can_be_switched_off(installed_package, monkeypatch):
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    found = available_tricks()
    assert "installed_trick" not in found and "input_noise" in found


def test_plugin_flag_adds_a_local_file(tmp_path, capsys):
    path = tmp_path / "local_trick.py"
    path.write_text(TRICK.replace("installed_trick", "local_trick"))
    assert main(["plugins", "--plugin", str(path)]) == 0
    out = capsys.readouterr().out
    assert "local_trick" in out and "d_targets" in out


def test_plugin_file_that_fails_to_import_is_a_clear_error(tmp_path, make_config):
    from ganlab.errors import PluginError

    path = tmp_path / "broken.py"
    path.write_text("import no_such_module_anywhere\n")
    with pytest.raises(PluginError, match=r"broken.py failed to import: ModuleNotFoundError"):
        make_config(plugins=[str(path)])
