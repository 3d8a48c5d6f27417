"""Shared by the end-to-end resume tests (test_kill_resume, test_faults): one small data set and one uninterrupted
deterministic training run of test_kill_resume's flags, made once per session; tests read it, never change it
(a test that needs to damage it works on a copy)."""

from __future__ import annotations

import os

import pytest

from tests.e2e.test_kill_resume import _h5, _latest, _run, _scalars, _tensors
from tests.helpers import synthetic_root


@pytest.fixture(scope="session")
def resume_data(tmp_path_factory):
    return synthetic_root(tmp_path_factory, "kill_data", 6, 1, seed=4)


@pytest.fixture(scope="session")
def resume_reference(resume_data, tmp_path_factory):
    """{run_dir, tensors (of the final checkpoint), scalars (every TensorBoard scalar), last (last.weights.h5)}."""
    run_dir = str(tmp_path_factory.mktemp("kill_ref"))
    _run(resume_data, run_dir, resume=False)
    return dict(run_dir=run_dir, tensors=_tensors(_latest(run_dir)[0]), scalars=_scalars(run_dir),
                last=_h5(os.path.join(run_dir, "last.weights.h5")))
