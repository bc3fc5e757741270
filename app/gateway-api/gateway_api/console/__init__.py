"""The admin console: server-rendered pages (Jinja2 and htmx) over the platform's API.

Served by the gateway's admin listener under ``/console`` (and under ``/admin`` on the
public port with ``GATEWAY_CONSOLE_PUBLIC``); see ``doc/console.md``.

- :mod:`~gateway_api.console.app`: the ASGI app, its security headers and error pages;
- :mod:`~gateway_api.console.signin`: signing in and out;
- :mod:`~gateway_api.console.sessions`: the server-side sessions (bounded);
- :mod:`~gateway_api.console.deps`: the viewer, permission and CSRF dependencies;
- :mod:`~gateway_api.console.client`: the platform's API as the signed-in user;
- :mod:`~gateway_api.console.data`: what the pages read (traffic, cluster, routes...);
- :mod:`~gateway_api.console.pages`: one module per page, listed in ``PAGES``.
"""
