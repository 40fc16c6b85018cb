"""Measuring a workspace's model on image files: the verification and identification runs (``runs``)
and the forgetting benchmark's base workspace (``bench_base``). The pure metrics are ``facerec.metrics``.
"""
