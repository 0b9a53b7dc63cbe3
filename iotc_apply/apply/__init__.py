"""Applying plans: the dependency graph, the executor and the step that runs each change.
May import: `client`, `keystore`, `model`, `plan`, `safefile`."""
