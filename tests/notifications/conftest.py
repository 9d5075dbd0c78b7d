from ..governance.conftest import gw  # noqa: F401 (the governance world, as a fixture here)
