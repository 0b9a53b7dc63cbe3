"""iotc-apply: a declarative reconciler for Avnet IoTConnect."""

__version__ = "0.1.0"
