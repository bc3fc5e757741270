"""The admin listener: its app (lifespan of the shared gateway) and ``/cluster``."""
