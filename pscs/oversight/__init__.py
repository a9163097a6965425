"""Oversight (M1): what internal affairs and auditors read — the audit trail exported for a
case file and its chain verified — decided and audited like every other use, above the
audit trail itself (which every package writes to, and so cannot depend on them)."""
