"""Delivery policy decisions: freezes, deployment windows, approvals, promotion gates.

Pure code, like ``strategies/``: no I/O, no clock of its own (``now`` is passed in), so
every rule is tested with plain values. The reconciler calls
``controller.policy.evaluate.evaluate`` before a new revision starts and
``controller.policy.gates.gate_satisfied`` for ``spec.requires``; ``hold`` builds the
status of a rollout kept waiting. ``controller.notify`` (which does I/O) sends the
webhooks the policies name.

Modules: ``cron`` (5-field cron matcher), ``windows`` (allowed deployment windows),
``freeze`` (absolute and recurring freezes, overrides), ``approvals`` (approval rules and
their state), ``gates`` (promotion between environments), ``evaluate`` (all of it, one
decision), ``hold`` (status and history for a held rollout).
"""
