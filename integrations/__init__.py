"""Implementations of ``domain.ports`` that talk to the outside world (webhooks, WeChat).

The domain never imports this package (import-linter); the edges (jobs, api, cli) build adapters from
settings and inject them.
"""
