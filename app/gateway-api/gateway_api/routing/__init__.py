"""Which service serves a request: the route table, its reload, sv-config's releases
and the JSON Schema of the table (``python -m gateway_api.routing.schema``)."""
