"""iotc-apply: a declarative reconciler for Avnet IoTConnect."""

# The one place the version is written: pyproject.toml reads it (setuptools' dynamic
# version), `iotc --version` prints it, and tests/test_distribution.py holds the action's
# documented tag (`uses: iotc-apply/iotc-apply@vX.Y.Z`) to it.
__version__ = "0.1.0"
