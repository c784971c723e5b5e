"""The operator dashboard, served by the API app at /dashboard: server-rendered pages (Jinja2, inline SVG
charts, one small vendored script and stylesheet inside the package, so it works offline).

Pages: Overview (counts, events per type over time, request latency), Models (offline metrics,
training curves, activation), Experiments (per-variant CTR/conversion with 95% intervals), Users
(history and current recommendations with their reasons), Items (details and similar items).
Access: the admin key, through the login form (a signed session cookie) or as X-API-Key.
"""

from shoprec.dashboard.routes import install

__all__ = ["install"]
