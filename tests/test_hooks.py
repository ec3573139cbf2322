"""Hook order: the hooks of a step fire in the documented order; tricks run in their TOML order."""
from __future__ import annotations

import inspect

import pytest

from ganlab import hookimpl, hookspecs
from ganlab.errors import PluginError
from ganlab.plugins import hook_names, make_plugin_manager
from ganlab.trainer import train

STEP_HOOKS = ["ganlab_real_batch", "ganlab_fake_batch", "ganlab_d_targets", "ganlab_after_d_loss",
              "ganlab_after_g_loss", "ganlab_after_step"]


def make_recorder():
    """A plugin with every per-run hook, recording (hook, step)."""
    calls = []

    class R:
        pass

    for name in ["ganlab_train_start", *STEP_HOOKS, "ganlab_train_end"]:
        def impl(self, state, _name=name, **kw):
            calls.append((_name, state.step))
        impl.__name__ = name
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                  inspect.Parameter("state", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        if name == "ganlab_train_end":
            params.append(inspect.Parameter("status", inspect.Parameter.POSITIONAL_OR_KEYWORD))
        impl.__signature__ = inspect.Signature(params)
        setattr(R, name, hookimpl(impl))
    return R(), calls


def test_step_hooks_fire_in_documented_order(make_config, tiny_images):
    plugin, calls = make_recorder()
    train(make_config(train={"max_steps": 2}), quiet=True, images=tiny_images, extra_plugins=[plugin])
    names = [c[0] for c in calls]
    assert names == ["ganlab_train_start", *STEP_HOOKS, *STEP_HOOKS, "ganlab_train_end"]
    # step is incremented between after_g_loss and after_step
    assert calls[5] == ("ganlab_after_g_loss", 0) and calls[6] == ("ganlab_after_step", 1)


ORDER_PLUGIN = '''
from dataclasses import dataclass
from ganlab import Trick, hookimpl

class First(Trick):
    name = "first"
    @hookimpl
    def ganlab_real_batch(self, state):
        state.log.setdefault("order", []).append(self.name)
    @hookimpl
    def ganlab_make_activation(self, net, config):
        import torch
        return torch.nn.ELU()

class Second(First):
    name = "second"
    @hookimpl
    def ganlab_make_activation(self, net, config):
        import torch
        return torch.nn.SELU()
'''


@pytest.mark.parametrize("order", [["first", "second"], ["second", "first"]])
def test_tricks_run_in_toml_order(make_config, tmp_path, order):
    path = tmp_path / "order_plugin.py"
    path.write_text(ORDER_PLUGIN)
    config = make_config(tricks={name: {} for name in order}, plugins=[str(path)])
    pm = make_plugin_manager(config)
    from ganlab.state import TrainState

    state = TrainState.__new__(TrainState)
    state.log = {}
    pm.hook.ganlab_real_batch(state=state)
    assert state.log["order"] == order
    # firstresult hooks: the first trick in TOML order answers
    act = pm.hook.ganlab_make_activation(net="G", config=config)
    assert type(act).__name__ == {"first": "ELU", "second": "SELU"}[order[0]]


def test_every_hook_is_documented_and_typed():
    for name in hook_names():
        spec = getattr(hookspecs, name)
        doc = inspect.getdoc(spec)
        assert doc and len(doc) > 40, name
        sig = inspect.signature(spec)
        assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), name
        assert sig.return_annotation is not inspect.Signature.empty, name


def test_misspelled_hook_fails_at_load_naming_it(make_config, tmp_path):
    path = tmp_path / "typo.py"
    path.write_text("from ganlab import Trick, hookimpl\n"
                    "class Typo(Trick):\n    name = 'typo'\n"
                    "    @hookimpl\n    def ganlab_real_batchh(self, state):\n        pass\n")
    config = make_config(tricks={"typo": {}}, plugins=[str(path)])
    with pytest.raises(PluginError, match="ganlab_real_batchh") as info:
        make_plugin_manager(config)
    assert str(path) in str(info.value)


def test_trick_name_clash_names_both(make_config, tmp_path):
    path = tmp_path / "clash.py"
    path.write_text("from ganlab import Trick\nclass MyNoise(Trick):\n    name = 'input_noise'\n")
    with pytest.raises(PluginError, match=r"two tricks are named 'input_noise': builtin .*input_noise.py.* and .*clash.py"):
        make_config(plugins=[str(path)])
