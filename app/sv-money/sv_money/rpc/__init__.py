"""sv-money's gRPC API (protos/edge/money/v1/wallet.proto), next to its REST API."""
