"""sslm-ci: ssl-mgr's renew/roll certificate model, run as a GitOps job."""

__version__ = "0.1.0"
