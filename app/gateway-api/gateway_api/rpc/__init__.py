"""gRPC at the gateway: routes by ``/package.Service/Method``, the HTTP pipeline, HTTP/2
to the upstreams, and the gateway's refusals as gRPC statuses."""
