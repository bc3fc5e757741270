"""Generated from protos/ by make protos (tools/protos.py)."""
