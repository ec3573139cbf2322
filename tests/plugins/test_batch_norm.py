from torch import nn

from ganlab.trainer import Trainer


def norms(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_on_puts_batchnorm_in_both_nets_and_separates_batches(make_config, tiny_images):
    trainer = Trainer(make_config(tricks={"batch_norm": {}}), quiet=True, images=tiny_images)
    s = trainer.state
    assert len(norms(s.G)) == 2 and len(norms(s.D)) == 1  # 16x16: 2 hidden G layers, D's first is bare
    convs = [m for m in s.G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert convs[0].bias is None  # a conv before BatchNorm needs no bias
    assert s.separate_batches is False
    trainer.hook.ganlab_train_start(state=s)
    assert s.separate_batches is True


def test_only_g(make_config, tiny_images):
    s = Trainer(make_config(tricks={"batch_norm": {"d": False, "momentum": 0.2}}), quiet=True, images=tiny_images).state
    assert len(norms(s.G)) == 2 and not norms(s.D)
    assert norms(s.G)[0].momentum == 0.2


def test_off_has_no_normalization_layer(make_config, tiny_images):
    trainer = Trainer(make_config(tricks={"batch_norm": {"enabled": False}}), quiet=True, images=tiny_images)
    s = trainer.state
    assert not norms(s.G) and not norms(s.D)
    assert all(m.bias is not None for m in s.G.modules() if isinstance(m, nn.ConvTranspose2d))
    trainer.hook.ganlab_train_start(state=s)
    assert s.separate_batches is False


def test_separate_batches_changes_what_d_sees(make_config, tiny_images):
    # with BatchNorm in D, one concatenated batch mixes real and fake statistics: the losses differ
    from ganlab.trainer import train
    import json

    def first_loss(separate):
        cfg = make_config(tricks={"batch_norm": {"separate_batches": separate}}, train={"max_steps": 2})
        rd = train(cfg, quiet=True, images=tiny_images).run_dir
        return json.loads((rd / "metrics.jsonl").read_text().splitlines()[0])["d_loss"]

    assert first_loss(True) != first_loss(False)
