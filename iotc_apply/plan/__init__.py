"""Plans: what would change, why, and the plan file. The planner is pure (no I/O).
May import: `model`, `safefile`."""

from .model import Account, Action, Change, FieldChange, Plan, PlanIssue, Reason
from .planner import PlanOptions, make_plan, make_sweep

__all__ = ["Account", "Action", "Change", "FieldChange", "Plan", "PlanIssue", "PlanOptions",
           "Reason", "make_plan", "make_sweep"]
