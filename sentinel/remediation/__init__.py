"""remediation layer."""
