"""Everything that draws on a terminal; the only package that imports rich.
May import: `apply`, `diagnostics`, `manifest`, `model`, `plan`."""
