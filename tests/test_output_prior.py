"""The output prior (``train.output_prior``, the search's ``output_prior``): a network starts predicting the prior
everywhere; only the logits' bias changes, and every model kind says which layers output logits."""

from __future__ import annotations

import math

import pytest
import torch

from hnanas.errors import ConfigError
from hnanas.nas.genotype import named_genotypes, sample_genotype
from hnanas.nas.models import build_model, main_output, nested_spec, set_output_prior
from hnanas.nas.space import load_space
from hnanas.pipeline.presets import build_config
from hnanas.search.config import resolve_config
from hnanas.search.supernet import OpSupernet, TopologySupernet

SPECS = {
    "dnanet": {"kind": "dnanet", "widths": [4, 8, 16, 32, 64], "blocks": [2, 2, 2, 2], "deep_supervision": True},
    "repisd": {"kind": "repisd", "widths": [8, 16], "bins": [1, 2, 3, 6], "dropout": 0.1},
}


def _nested(norm=None):
    space = load_space("rep_nested")
    return nested_spec(space, sample_genotype(space, 3), norm)


@pytest.mark.parametrize("kind", ["nested", "nested_normalised", "dnanet", "repisd"])
def test_only_the_logits_bias_changes_and_the_output_starts_at_the_prior(kind):
    spec = {"nested": _nested(), "nested_normalised": _nested((100.0, 50.0))}.get(kind) or SPECS[kind]
    torch.manual_seed(0)
    plain = build_model(spec)
    torch.manual_seed(0)
    primed = build_model(spec)
    set_output_prior(primed, 0.01)
    changed = {n for n, p in primed.state_dict().items() if not torch.equal(p, plain.state_dict()[n])}
    assert changed and all(n.endswith("bias") for n in changed)  # the head(s)' bias, nothing else
    assert all(float(v) == pytest.approx(math.log(0.01 / 0.99)) for n in changed for v in primed.state_dict()[n])
    primed.eval()
    with torch.no_grad():  # zero input: the logits are the bias (and what the layers before make of zero)
        p_plain = torch.sigmoid(main_output(plain.eval()(torch.zeros(1, 1, 32, 32)))).mean()
        p_primed = torch.sigmoid(main_output(primed(torch.zeros(1, 1, 32, 32)))).mean()
    assert p_primed < 0.1 < p_plain


def test_supernets_say_which_layer_outputs_logits():
    space = load_space("rep_nested")
    for net in (TopologySupernet(space), OpSupernet(space, named_genotypes(space)["dnanet_res3"])):
        set_output_prior(net, 0.2)
        assert float(net.head.bias.detach()[0]) == pytest.approx(math.log(0.2 / 0.8))


def test_a_bad_prior_or_a_model_without_output_layers_is_a_clear_error():
    model = build_model(_nested())
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="probability in \\(0, 1\\)"):
            set_output_prior(model, bad)
    with pytest.raises(ConfigError, match="Conv2d does not say which layers output logits"):
        set_output_prior(torch.nn.Conv2d(1, 1, 1), 0.01)
    unset = torch.nn.Conv2d(1, 1, 1)  # no prior configured: nothing is asked of the model, nothing changes
    before = {n: p.clone() for n, p in unset.state_dict().items()}
    set_output_prior(unset, None)
    assert all(torch.equal(p, before[n]) for n, p in unset.state_dict().items())
    with pytest.raises(ConfigError, match="output_prior must be a probability"):
        build_config("quick", {"genotype": "dnanet_res3", "space": "rep_nested"}, changes={"train.output_prior": 1})
    with pytest.raises(ConfigError, match="output_prior must be a probability"):
        resolve_config("cpu", {"output_prior": 0.0})
    assert build_config("quick", {"genotype": "dnanet_res3", "space": "rep_nested"}).train.output_prior is None
