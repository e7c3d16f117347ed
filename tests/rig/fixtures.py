"""pytest fixtures for the ACME rig. Use them in a test module with
``pytest_plugins = ["tests.rig.fixtures"]`` (or from tests/conftest.py).

``acme_rig_module`` starts named + pebble + the http-01 responder once per test module and
always stops them; ``acme_rig`` hands the same rig to each test after :meth:`AcmeRig.reset`
(empty fragments, no tokens, CA running), so a failed test cannot leak records into the next.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rig.acme_rig import AcmeRig


@pytest.fixture(scope="module")
def acme_rig_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeRig]:
    rig = AcmeRig(tmp_path_factory.mktemp("acme-rig"))
    with rig:
        yield rig


@pytest.fixture
def acme_rig(acme_rig_module: AcmeRig) -> AcmeRig:
    acme_rig_module.reset()
    return acme_rig_module
