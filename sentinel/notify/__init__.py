"""Notifications with evidence: a generic JSON webhook, Slack incoming webhooks, Prometheus Alertmanager.

``message`` builds what is said (pure), ``destinations`` renders it per receiver and sends it over
httpx, ``notifier`` selects, rate-limits and delivers it from a queue and a worker thread per
destination, off the poll's critical path.
"""
