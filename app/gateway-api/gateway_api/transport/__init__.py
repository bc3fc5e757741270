"""The gateway's transport: the HTTP/1.1 server, the upstream client and WebSocket tunnels.

Its contract with the layers above is :class:`gateway_api.transport.exchange.Exchange`
(a Protocol): a handler takes one exchange per request. Nothing here imports them.
"""
