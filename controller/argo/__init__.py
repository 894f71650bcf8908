"""Argo Rollouts compatibility: the field table, the conversion of Argo manifests, and
the messages that name an Argo feature instead of saying "check the spelling".

- ``fields``: every Argo Rollouts field we know, what deployctl does with it (the table
  in docs/argo.md is generated from it).
- ``conditions``: Argo's ``successCondition``/``failureCondition`` expressions read as
  thresholds where they are plain comparisons.
- ``convert``: ``deployctl convert``, whole multi-document files in and out.
"""
