"""Releases across clusters: one version rolled through waves of member clusters.

The pure half decides, the rest talks to clusters:

- ``change.py``: the new pod template of a member (images, template patch) — pure;
- ``observe.py``: what one read of a member's Rollout shows — pure;
- ``planner.py``: Release spec + status + member observations + now -> actions, the new
  status, Events and when to look again — pure, like ``strategies/``;
- ``actions.py``: what a plan holds (member changes with their annotations, Events);
- ``credentials.py``: which kubeconfigs a ClusterTarget may hold — pure;
- ``members.py``: the only module that calls member clusters (through ``controller.kube``);
- ``reconciler.py``: one pass for one Release; ``controller.py``: informers, queue,
  workers, leader election for ``deployctl release-controller``.
"""
