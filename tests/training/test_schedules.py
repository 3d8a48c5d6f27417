"""WarmupPolyDecay against the NumPy formula, plus the registry and atomic-write helpers (all tiny)."""

import json
import os

import numpy as np
import pytest

from litedepth_tf.training.schedules import WarmupPolyDecay, warmup_poly_numpy


@pytest.mark.parametrize("mmcv", [False, True])
def test_schedule_matches_numpy(mmcv):
    kw = dict(max_lr=4e-3, total_steps=10000, min_lr=1e-3, warmup_steps=1500, warmup_ratio=1e-4, power=0.9,
              mmcv_warmup=mmcv)
    sched = WarmupPolyDecay(**kw)
    steps = np.array([0, 1, 10, 749, 1499, 1500, 1501, 5000, 9999, 10000, 12000])
    got = np.array([float(sched(s)) for s in steps])
    want = warmup_poly_numpy(steps, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-10)


def test_schedule_shape():
    sched = WarmupPolyDecay(max_lr=4e-3, total_steps=3000, min_lr=1e-3, warmup_steps=1500)
    lr = np.array([float(sched(s)) for s in range(0, 3200, 50)])
    assert lr[0] == pytest.approx(4e-3 * 1e-4, rel=1e-4)          # warm-up starts at ratio * max_lr
    assert np.all(np.diff(lr[:30]) > 0)                            # rising during warm-up
    assert np.all(np.diff(lr[30:]) <= 1e-12)                       # decaying after it
    assert lr[-1] == pytest.approx(1e-3)                           # floor after total_steps
    assert float(sched(1500)) == pytest.approx((4e-3 - 1e-3) * 0.5 ** 0.9 + 1e-3, rel=1e-5)


def test_schedule_no_warmup_and_config_round_trip():
    sched = WarmupPolyDecay(max_lr=1e-2, total_steps=100, min_lr=0.0, warmup_steps=0)
    assert float(sched(0)) == pytest.approx(1e-2)
    again = WarmupPolyDecay.from_config(sched.get_config())
    assert float(again(50)) == pytest.approx(float(sched(50)))


@pytest.mark.parametrize("kw, word", [(dict(max_lr=0), "max_lr"), (dict(min_lr=1.0), "min_lr"),
                                      (dict(total_steps=0), "total_steps"), (dict(warmup_steps=-1), "warmup")])
def test_schedule_bad_args_name_the_argument(kw, word):
    args = dict(max_lr=1e-3, total_steps=10, min_lr=0.0, warmup_steps=2) | kw
    with pytest.raises(ValueError, match=word):
        WarmupPolyDecay(**args)


def test_registry_resolves_lazily():
    from litedepth_tf.models import presets as registry

    assert "student" in registry.MODELS
    assert registry.resolve("litedepth_tf.models.student:build_student").__name__ == "build_student"
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        registry.get_builder("nope")
    for name, spec in registry.MODELS.items():  # every entry points at an importable function
        assert callable(registry.resolve(spec)), name


def test_atomic_writes(tmp_path):
    from litedepth_tf.common import files as fsutil

    p = tmp_path / "sub" / "x.json"
    fsutil.atomic_write_json(p, {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1}
    fsutil.atomic_write_text(p, "new")
    assert p.read_text() == "new"

    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom):
        with fsutil.atomic_path(p) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise Boom()
    assert p.read_text() == "new"                                  # old file intact
    assert sorted(os.listdir(p.parent)) == ["x.json"]              # no temp file left behind
