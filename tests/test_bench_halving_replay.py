"""bench/halving_replay.py: the halving strategy's successive halving replayed on ledgers' learning curves."""

from __future__ import annotations

import pytest

from _helpers import load_bench
from hnanas.config import override
from hnanas.fileio import read_json, write_json, write_text, write_yaml
from hnanas.search.config import preset_config

# 9 networks, test IoU 0.10 .. 0.90 on every seed; every validation curve rises to the network's test IoU, so one
# run's signal ranks the networks as the judging seed does at every epoch
NETS = {f"n{i}": 0.1 * i for i in range(1, 10)}
EPOCHS = 3


def make_ledger(root, epochs=EPOCHS):
    write_json(root / "networks.json", {"networks": [{"name": n, "role": "random"} for n in NETS]})
    for name, iou in NETS.items():
        for seed in range(3):
            run = root / "nets" / name / f"seed{seed}"
            write_json(run / "metrics.json", {"iou": iou})
            v = [iou * e / epochs for e in range(1, epochs + 1)]
            rows = [f"{e},{1 - x},{1 - x},{x}" for e, x in enumerate(v, 1)]
            write_text(run / "retrain_log.csv", "epoch,loss,val_loss,val_iou\n" + "\n".join(rows) + "\n")
            write_yaml(run / "config.yaml", {
                "model": {"genotype": f"genotypes/{name}.json"},
                "data": {"dataset": "../shared/datasets/NUAA-SIRST", "split": "idx_427", "crop_size": 128},
                "train": {"epochs": epochs, "batch_size": 8}})
    return root


# the cpu preset's halving with rungs 1:3 on a 100-image split (rung_images 100), 6 candidates a search
RUNGS = ["--train-images", "100", *(x for kv in ("min_epochs=1", "max_epochs=3", "rung_images=100", "trials=6")
                                     for x in ("--set", kv))]
BASE = "preset cpu + min_epochs=1, max_epochs=3, rung_images=100, trials=6"


def test_a_signal_that_ranks_as_the_truth_picks_what_the_oracle_picks_for_less(tmp_path, capsys):
    bench = load_bench("halving_replay")
    ledger = make_ledger(tmp_path / "ledger")
    assert bench.main([str(ledger), *RUNGS, "--reps", "30", "--variant", "two runs: final_seeds=2",
                       "--json", str(tmp_path / "out.json")]) == 0
    out = read_json(tmp_path / "out.json")
    res = out["result"]
    assert out["networks"] == 9 and out["pooled_seed_sd"] == pytest.approx(0.0)
    assert res["_rungs"][BASE] == [1, 3] and res["_epochs"] == 3
    oracle = res["oracle"]["gain"]
    assert oracle > 0.2  # the best of 6 drawn from 0.1..0.9 is well above their mean
    for k in (BASE, "two runs", "no halving"):
        assert res[k]["gain"] == pytest.approx(oracle) and res[k]["percentile"] == pytest.approx(1.0)
        assert res[k]["winner_is_first"] == res["oracle"]["winner_is_first"]  # the same network every replay
    # halving stops candidates at the first rung: cheaper than training all 6 for 3 epochs; a second run of the
    # finalists costs 3 epochs each on top
    assert 6 <= res[BASE]["candidate_epochs"] < res["no halving"]["candidate_epochs"] == 18
    assert res[BASE]["candidate_epochs"] < res["two runs"]["candidate_epochs"]
    assert f"| {BASE} | 1:3 |" in capsys.readouterr().out


def test_a_signal_read_off_the_wrong_seed_is_judged_on_the_held_out_one(tmp_path):
    bench = load_bench("halving_replay")
    ledger = make_ledger(tmp_path / "ledger")
    # seed 0's curves rank the networks backwards; the replay draws the search's seed at random among 0..2, so
    # the mean gain lies between the oracle's and its negative
    for name, iou in NETS.items():
        rows = [f"{e},0.5,0.5,{(1 - iou) * e / EPOCHS}" for e in range(1, EPOCHS + 1)]
        write_text(ledger / "nets" / name / "seed0" / "retrain_log.csv",
                   "epoch,loss,val_loss,val_iou\n" + "\n".join(rows) + "\n")
    assert bench.main([str(ledger), *RUNGS, "--reps", "60",
                       "--json", str(tmp_path / "out.json")]) == 0
    res = read_json(tmp_path / "out.json")["result"]
    assert -res["oracle"]["gain"] < res[BASE]["gain"] < res["oracle"]["gain"]


@pytest.mark.parametrize("variant, words", [
    ("short: max_epochs=2", "trains candidates 2 epochs"),
    ("many: trials=12", "12 candidates per search"),
    ("bad: eta=two", "expected an integer"),
    ("bad: etaa=2", "unknown key 'etaa'"),
    ("fs3: final_seeds=3", "share 3 finished seed"),
    ("ap: metric=best_val_iou_ap", "needs the validation AP"),
])
def test_a_variant_the_ledgers_cannot_replay_is_refused_in_one_line(tmp_path, variant, words):
    ledger = make_ledger(tmp_path / "ledger")
    with pytest.raises(SystemExit, match=words):
        load_bench("halving_replay").main([str(ledger), *RUNGS, "--reps", "2", "--variant", variant])


def test_a_synchronous_startup_batch_picks_as_the_oracle_for_its_rungs_cost(tmp_path):
    bench = load_bench("halving_replay")
    ledger = make_ledger(tmp_path / "ledger")
    assert bench.main([str(ledger), *RUNGS, "--reps", "30", "--variant", "sync: sync_startup=true",
                       "--json", str(tmp_path / "out.json")]) == 0
    res = read_json(tmp_path / "out.json")["result"]
    assert res["sync"]["gain"] == pytest.approx(res["oracle"]["gain"])
    assert res["sync"]["winner_is_first"] == res["oracle"]["winner_is_first"]
    # all 6 (the preset's 10 start-up candidates, capped at the 6 drawn) train to the first rung, then only the
    # best 1/3 of them, 2, trains on to the last: 6 x 1 + 2 x 2 epochs, never more than the asynchronous halving
    assert res["sync"]["candidate_epochs"] == 10 <= res[BASE]["candidate_epochs"]


def test_the_pool_bootstrap_tells_a_real_difference_from_none(tmp_path, capsys):
    bench = load_bench("halving_replay")
    ledger = make_ledger(tmp_path / "ledger")
    args = [str(ledger), *RUNGS, "--reps", "20", "--pool-bootstrap", "8", "--variant", "two runs: final_seeds=2",
            "--variant", "fewer: trials=3", "--json", str(tmp_path / "out.json")]
    assert bench.main(args) == 0
    boot = read_json(tmp_path / "out.json")["pool_bootstrap"]
    assert boot["resamples"] == 8
    vs = boot["versus_base"]
    assert vs[BASE]["differences"] == [0.0] * 8  # the base against itself
    # the signal ranks as the truth: a second run changes no pick, whatever networks the pool holds
    assert vs["two runs"]["differences"] == pytest.approx([0.0] * 8)
    # the best of 3 stands less far above its candidates' mean than the best of 6, in every resample
    assert vs["fewer"]["ci95"][1] < 0 and all(d < 0 for d in vs["fewer"]["differences"])
    assert "vs base, pool bootstrap 95 % |" in capsys.readouterr().out
    assert bench.main(args) == 0
    assert read_json(tmp_path / "out.json")["pool_bootstrap"] == boot  # the same draws: the same numbers


def test_the_pool_bootstrap_judges_every_resample_by_the_whole_pools_budget(tmp_path):
    bench = load_bench("halving_replay")
    ledger = make_ledger(tmp_path / "ledger", epochs=4)
    for seed in range(3):  # one network's retrains are 3 epochs, the rest 4: the pool's budget is 3
        rows = [f"{e},0.5,0.5,{0.1 * e / EPOCHS}" for e in range(1, EPOCHS + 1)]
        write_text(ledger / "nets" / "n1" / f"seed{seed}" / "retrain_log.csv",
                   "epoch,loss,val_loss,val_iou\n" + "\n".join(rows) + "\n")
    # resamples without n1 (about a third of them) are still replayed at the 3-epoch budget
    assert bench.main([str(ledger), *RUNGS, "--reps", "5", "--pool-bootstrap", "8",
                       "--json", str(tmp_path / "out.json")]) == 0


def test_a_heavy_gradient_norm_weight_picks_by_the_proxy_and_needs_the_proxies_file(tmp_path):
    bench = load_bench("halving_replay")
    ledger = make_ledger(tmp_path / "ledger")
    variant = "proxy: grad_norm_weight=100"
    with pytest.raises(SystemExit, match="--proxies"):
        bench.main([str(ledger), *RUNGS, "--reps", "2", "--variant", variant])
    write_json(tmp_path / "short.json", {"networks": {"n1": {"grad_norm": 0.0}}})
    with pytest.raises(SystemExit, match="no figures of n2"):
        bench.main([str(ledger), *RUNGS, "--reps", "2", "--proxies", str(tmp_path / "short.json")])
    # ln grad norm rising with test IoU: weighed 100x the signal, it ranks the networks backwards, so the proxy
    # variant picks the worst candidate drawn; weighed 0 (the base), the replay is unchanged by the file
    write_json(tmp_path / "proxies.json", {"networks": {n: {"grad_norm": iou} for n, iou in NETS.items()}})
    assert bench.main([str(ledger), *RUNGS, "--reps", "30", "--variant", variant, "--proxies",
                       str(tmp_path / "proxies.json"), "--json", str(tmp_path / "out.json")]) == 0
    res = read_json(tmp_path / "out.json")["result"]
    assert res[BASE]["gain"] == pytest.approx(res["oracle"]["gain"])
    assert res["proxy"]["percentile"] < 0.2 and res["proxy"]["gain"] < 0


def test_with_one_finisher_the_replay_fills_the_finalists_with_the_candidate_stopped_latest():
    bench = load_bench("halving_replay")

    def run(iou):  # a flat validation curve at ``iou``
        return (iou, [{"epoch": e, "loss": 0.5, "val_loss": 0.5, "val_iou": iou} for e in range(1, 4)])

    # seed 0 (the search's run) ranks a > c > b, seed 1 (the finalists' second run) c > b > a
    curves = {"a": {0: run(0.9), 1: run(0.1)}, "b": {0: run(0.5), 1: run(0.5)}, "c": {0: run(0.6), 1: run(0.9)}}
    base = override(preset_config("cpu").halving, {"min_epochs": 1, "max_epochs": 3, "rung_images": None,
                                                   "trials": 3, "eta": 3})
    # asynchronous halving: a, drawn first, trains all 3 epochs; b and c stop at the first rung, below it
    assert bench.pick(curves, ["a", "b", "c"], [0, 1], base, 1, 3) == ("a", 5)
    two = override(base, {"final_seeds": 2})
    # a alone finished: c, the better of the two stopped at epoch 1, is trained to the end (3 epochs) and joins it;
    # both then run a second seed (3 epochs each); c's mean (0.6 + 0.9) / 2 beats a's (0.9 + 0.1) / 2
    assert bench.pick(curves, ["a", "b", "c"], [0, 1], two, 1, 3) == ("c", 5 + 3 + 2 * 3)
