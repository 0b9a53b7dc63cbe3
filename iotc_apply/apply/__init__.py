"""Applying plans: the executor, the key store and certificates."""
