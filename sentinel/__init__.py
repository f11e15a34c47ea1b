"""Kube Sentinel: Kubernetes error prioritization and safe auto-remediation over Grafana Loki."""

__version__ = "0.1.0"
